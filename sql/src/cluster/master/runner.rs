//! The session's `DistributedRunner`: each query's producer stages handed to the executors
//! through a `QueryScheduler`, the final stage run here, the stage outputs removed afterwards.

use super::*;

/// The session's distributed runner: one [`QueryScheduler`] per query.
pub(super) struct ClusterRunner {
    pub(super) core: Arc<MasterCore>,
}

#[async_trait::async_trait]
impl DistributedRunner for ClusterRunner {
    async fn run(
        &self,
        query: DistributedQuery<'_>,
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<(Vec<RecordBatch>, Vec<StageStats>)> {
        let core = &self.core;
        let plan = query.plan;
        let id = {
            let mut st = core.lock();
            let id = st.next_query;
            st.next_query += 1;
            id
        };
        if plan.stages.len() == 1 {
            // Nothing to distribute: one stage, run here.
            let dir = LocalStageDir::new(core.scratch.join(format!("query-{id}")));
            return executor::run_local(plan, query.state, dir, 1, progress).await;
        }
        core.wait_for_executors().await;
        let shuffle_job = format!("{}-q{id}", core.job_id);
        let shapes = StageShape::producers_of(plan, query.hosts);
        let template = TaskSpec {
            attempt: TaskAttemptId {
                query: id,
                stage: 0,
                task: 0,
                attempt: 0,
            },
            statement: query.statement.to_string(),
            tables: query.tables.clone(),
            settings: query.settings.clone(),
            fingerprint: crate::cluster::fingerprint(plan),
            start_time_ns: query.start_time_ns,
            shuffle_job: shuffle_job.clone(),
            shuffle_secret: core.secret.as_bytes().to_vec(),
            inputs: vec![],
        };
        {
            let mut st = core.lock();
            let mut scheduler = QueryScheduler::new(id, shapes.clone(), AttemptPolicy::default())
                .with_locality_wait(query.locality_wait);
            scheduler.set_view(st.locality_view());
            st.queries.insert(
                id,
                RunningQuery {
                    scheduler,
                    template,
                },
            );
        }
        core.changed.notify_waiters();
        let result = self
            .run_query(id, plan, query.state, &shapes, progress)
            .await;
        // Stage outputs go whatever the outcome (on every node that may hold some), in the
        // background: the result need not wait for the deletes. The aux service also removes a
        // session's outputs when its application ends, should one of these be lost.
        core.lock().queries.remove(&id);
        for addr in core.shuffle_addresses() {
            let (core, job) = (Arc::clone(core), shuffle_job.clone());
            tokio::spawn(async move {
                if let Err(e) = core.service.remove_job(addr, &job, &core.secret).await {
                    tracing::warn!(%addr, %job, error = %e, "cannot remove stage outputs");
                }
            });
        }
        result
    }
}

impl ClusterRunner {
    async fn run_query(
        &self,
        id: u64,
        plan: &crate::stages::StagePlan,
        state: &datafusion::execution::context::SessionState,
        shapes: &[StageShape],
        progress: &(dyn Fn(StageProgress) + Send + Sync),
    ) -> SqlResult<(Vec<RecordBatch>, Vec<StageStats>)> {
        let core = &self.core;
        let started = Instant::now();
        let mut stage_done_at: BTreeMap<u32, Duration> = BTreeMap::new();
        loop {
            // Producers.
            let locations = loop {
                // Figures are read under the lock and reported after it: the progress callback
                // takes the same lock.
                let signal = core.next_change();
                let (reports, ready) = {
                    let st = core.lock();
                    let q = st
                        .queries
                        .get(&id)
                        .ok_or_else(|| SqlError::Cluster("the query was dropped".into()))?;
                    if let Some(why) = q.scheduler.failure() {
                        if q.scheduler.failed_out_of_memory() {
                            return Err(SqlError::OutOfMemory(why.to_string()));
                        }
                        return Err(SqlError::Cluster(why.to_string()));
                    }
                    let mut reports = Vec::with_capacity(shapes.len());
                    for s in shapes {
                        let f = q.scheduler.figures(s.id);
                        if f.done == s.tasks {
                            stage_done_at
                                .entry(s.id)
                                .or_insert_with(|| started.elapsed());
                        }
                        reports.push(StageProgress {
                            stage: s.id as usize,
                            stages: plan.stages.len(),
                            done: f.done as usize,
                            total: s.tasks as usize,
                            rows: f.rows,
                            bytes: f.bytes,
                        });
                    }
                    let ready = q.scheduler.is_done().then(|| {
                        shapes
                            .iter()
                            .map(|s| q.scheduler.locations(s.id))
                            .collect::<Vec<_>>()
                    });
                    (reports, ready)
                };
                for r in reports {
                    progress(r);
                }
                if let Some(locations) = ready {
                    break locations;
                }
                wait_change(signal, Duration::from_millis(250)).await;
            };
            // The final stage, here.
            let lost = LostInputs::default();
            let source = ShuffleStageSource::new(
                Arc::clone(&core.fetcher),
                ShuffleJob {
                    job_id: format!("{}-q{id}", core.job_id),
                    secret: core.secret.clone(),
                },
                &locations,
                core.scratch.join(format!("fetch-q{id}")),
                lost.clone(),
            );
            let config = state
                .config()
                .clone()
                .with_extension(Arc::new(StageInputs::new(Arc::new(source))));
            let ctx = Arc::new(TaskContext::from(state).with_session_config(config));
            let final_stage = plan.final_stage();
            let fragment = reset_plan_states(Arc::clone(&final_stage.plan))?;
            let final_started = Instant::now();
            match crate::scan_errors::collect_partitions(Arc::clone(&fragment), ctx).await {
                Ok(batches) => {
                    let st = core.lock();
                    let q = st
                        .queries
                        .get(&id)
                        .ok_or_else(|| SqlError::Cluster("the query was dropped".into()))?;
                    let mut stats: Vec<StageStats> = shapes
                        .iter()
                        .map(|s| {
                            let f = q.scheduler.figures(s.id);
                            StageStats {
                                stage: s.id as usize,
                                exchange: plan.stages[s.id as usize].exchange,
                                tasks: f.done as usize,
                                output_rows: f.rows,
                                output_bytes: f.bytes,
                                spilled_bytes: f.spilled,
                                elapsed: stage_done_at.get(&s.id).copied().unwrap_or_default(),
                                attempts: f.attempts as usize,
                                reruns: f.reruns as usize,
                                data_local: f.data_local as usize,
                                rack_local: f.rack_local as usize,
                            }
                        })
                        .collect();
                    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                    stats.push(StageStats::final_stage(
                        final_stage,
                        rows,
                        executor::spilled_bytes(&fragment),
                        final_started.elapsed(),
                    ));
                    return Ok((batches, stats));
                }
                Err(e) => match lost.first() {
                    Some((producer, why)) => {
                        let now = core.clock.now();
                        if let Some(q) = core.lock().queries.get_mut(&id) {
                            q.scheduler.output_lost(producer, &why, now);
                        }
                        core.changed.notify_waiters();
                    }
                    None => return Err(e.into()),
                },
            }
        }
    }
}
