//! The query master's RPC service: the client's statements (`Execute`, `Poll`, `Close`) and the
//! executors' tasks (`RegisterExecutor`, `NextTask`, `TaskEnded`).

use super::*;

/// The RPC service: the client's statements and the executors' tasks.
pub(super) struct MasterService {
    pub(super) core: Arc<MasterCore>,
    pub(super) session: Arc<SqlSession>,
}

impl Service for MasterService {
    type Request = QmRequest;
    type Response = QmResponse;

    async fn handle(self: Arc<Self>, req: QmRequest, _peer: PeerInfo) -> QmResponse {
        let core = &self.core;
        match req {
            QmRequest::Execute {
                token,
                seq,
                statement,
            } => {
                if !sheaf_rpc::token::same(&token, &core.client_token) {
                    return QmResponse::Refused("not this session's client".into());
                }
                let id = {
                    let mut st = core.lock();
                    st.last_client = Some(Instant::now());
                    if seq < st.next_statement {
                        // A repeat whose first answer was lost: the statement already started.
                        return QmResponse::Started { id: seq };
                    }
                    if seq > st.next_statement {
                        return QmResponse::Refused(format!(
                            "statement {seq} out of order (the next is {})",
                            st.next_statement
                        ));
                    }
                    // The client runs one statement at a time: a new one means it has the
                    // outcomes of the earlier ones (kept until now, so a poll whose reply was
                    // lost can be repeated).
                    st.statements.retain(|_, s| s.outcome.is_none());
                    let id = st.next_statement;
                    st.next_statement += 1;
                    st.statements.insert(id, StatementState::default());
                    id
                };
                let this = Arc::clone(&self);
                tokio::spawn(async move { this.execute(id, statement).await });
                QmResponse::Started { id }
            }
            QmRequest::Poll { token, id } => {
                if !sheaf_rpc::token::same(&token, &core.client_token) {
                    return QmResponse::Refused("not this session's client".into());
                }
                let deadline = Instant::now() + LONG_POLL;
                loop {
                    let signal = core.next_change();
                    {
                        let mut st = core.lock();
                        st.last_client = Some(Instant::now());
                        let Some(s) = st.statements.get(&id) else {
                            return QmResponse::Refused(format!("no statement {id}"));
                        };
                        if let Some(outcome) = s.outcome.clone() {
                            return QmResponse::Outcome(outcome);
                        }
                        if Instant::now() >= deadline {
                            return QmResponse::Running(s.progress.values().copied().collect());
                        }
                    }
                    wait_change(signal, Duration::from_millis(100)).await;
                }
            }
            QmRequest::Close { token } => {
                if !sheaf_rpc::token::same(&token, &core.client_token) {
                    return QmResponse::Refused("not this session's client".into());
                }
                core.lock().closed = true;
                core.changed.notify_waiters();
                QmResponse::Ack
            }
            QmRequest::RegisterExecutor {
                token,
                container,
                host,
                shuffle,
            } => {
                if !sheaf_rpc::token::same(&token, &core.executor_token) {
                    return QmResponse::Refused("not an executor of this session".into());
                }
                let mut st = core.lock();
                let id = st.next_executor;
                st.next_executor += 1;
                st.executors.insert(
                    id,
                    ExecutorInfo {
                        container,
                        host,
                        shuffle,
                        alive: true,
                    },
                );
                st.update_views();
                drop(st);
                core.changed.notify_waiters();
                QmResponse::Registered { executor: id }
            }
            QmRequest::NextTask { token, executor } => {
                if !sheaf_rpc::token::same(&token, &core.executor_token) {
                    return QmResponse::Refused("not an executor of this session".into());
                }
                let deadline = Instant::now() + LONG_POLL;
                loop {
                    let notified = core.changed.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    {
                        let now = core.clock.now();
                        let mut st = core.lock();
                        if st.closed {
                            return QmResponse::Shutdown;
                        }
                        let Some(me) = st.executors.get(&executor).cloned() else {
                            return QmResponse::Refused(format!("unknown executor {executor}"));
                        };
                        if !me.alive {
                            return QmResponse::Shutdown;
                        }
                        let other_hosts =
                            st.executors.values().any(|e| e.alive && e.host != me.host);
                        for q in st.queries.values_mut() {
                            if let Some(a) = q.scheduler.next_task(
                                executor,
                                &me.host,
                                me.shuffle,
                                other_hosts,
                                now,
                            ) {
                                let mut spec = q.template.clone();
                                spec.attempt = a.attempt;
                                spec.inputs = a.inputs;
                                return QmResponse::Task(Box::new(spec));
                            }
                        }
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                        return QmResponse::NoTask;
                    }
                }
            }
            QmRequest::TaskEnded {
                token,
                executor: _,
                attempt,
                outcome,
            } => {
                if !sheaf_rpc::token::same(&token, &core.executor_token) {
                    return QmResponse::Refused("not an executor of this session".into());
                }
                let now = core.clock.now();
                {
                    let mut st = core.lock();
                    if let Some(q) = st.queries.get_mut(&attempt.query) {
                        match outcome {
                            TaskOutcome::Succeeded {
                                partitions,
                                spilled_bytes,
                            } => q
                                .scheduler
                                .succeeded(attempt, partitions, spilled_bytes, now),
                            TaskOutcome::Failed { error } => {
                                q.scheduler.failed(attempt, error, now)
                            }
                            TaskOutcome::OutOfMemory { error } => {
                                q.scheduler.out_of_memory(attempt, error, now)
                            }
                            TaskOutcome::FetchFailed { stage, task, error } => {
                                q.scheduler.fetch_failed(attempt, (stage, task), error, now)
                            }
                        }
                    }
                }
                core.changed.notify_waiters();
                QmResponse::Ack
            }
        }
    }
}

impl MasterService {
    async fn execute(&self, id: u64, statement: String) {
        let core = Arc::clone(&self.core);
        let progress = move |p: StageProgress| {
            let mut st = core.lock();
            if let Some(s) = st.statements.get_mut(&id) {
                s.progress.insert(p.stage, p);
            }
        };
        let start_ms = sheaf_rpc::time::wall_clock_ms();
        let started = Instant::now();
        let _ = self.session.take_last_run();
        let result = self.session.execute(&statement, &progress).await;
        let (plan, stages) = match self.session.take_last_run() {
            Some((plan, stages)) => (Some(plan), stages),
            None => (None, Vec::new()),
        };
        let record = StatementRecord {
            text: statement.clone(),
            start_ms,
            elapsed_ms: started.elapsed().as_millis() as u64,
            error: result.as_ref().err().map(|e| e.to_string()),
            rows: match &result {
                Ok(StatementOutcome::Rows { batches, .. }) => {
                    Some(batches.iter().map(|b| b.num_rows() as u64).sum())
                }
                _ => None,
            },
            plan,
            stages,
        };
        self.core.lock().history.push(record);
        let outcome = match result {
            Ok(StatementOutcome::Rows {
                schema,
                batches,
                stages,
            }) => match crate::cluster::encode_rows(&schema, &batches) {
                Ok(ipc) => WireOutcome::Rows { ipc, stages },
                Err(e) => WireOutcome::Failed(e.to_string()),
            },
            Ok(StatementOutcome::Done(msg)) => WireOutcome::Done(msg),
            Err(e) => WireOutcome::Failed(e.to_string()),
        };
        if let Some(s) = self.core.lock().statements.get_mut(&id) {
            s.outcome = Some(outcome);
        }
        self.core.changed.notify_waiters();
    }
}
