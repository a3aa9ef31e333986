//! Running a [`StagePlan`] in this process: every producer stage's tasks write their outputs to a
//! scratch directory (the same files and checks a cluster task uses), then the final stage runs and
//! its rows are collected. This is `sheaf sql --local`: the same planner and stage cutting as on the
//! cluster, so what runs locally is what runs distributed.

use crate::error::{SqlError, SqlResult};
use crate::stage_store::{LocalStageDir, StageInputs, TaskManifest};
use crate::stages::{ExchangeKind, Stage, StageId, StagePlan};
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::context::SessionState;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one stage did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StageStats {
    /// The stage.
    pub stage: StageId,
    /// The exchange to its consumer (`None` for the final stage).
    pub exchange: Option<ExchangeKind>,
    /// Tasks run (attempts that succeeded).
    pub tasks: usize,
    /// Rows written (for the final stage: result rows).
    pub output_rows: u64,
    /// Bytes written to stage outputs (shuffle bytes written; 0 for the final stage).
    pub output_bytes: u64,
    /// Bytes spilled to disk by the stage's operators (sorts, aggregates, joins).
    pub spilled_bytes: u64,
    /// Wall time of the stage.
    pub elapsed: Duration,
    /// Attempts launched (more than `tasks` when attempts failed, were lost with their node or
    /// re-ran a lost output).
    #[serde(default)]
    pub attempts: usize,
    /// Outputs that were lost after they were written and recomputed (lineage re-runs).
    #[serde(default)]
    pub reruns: usize,
    /// Attempts that ran on a host holding their block (MapReduce's DATA_LOCAL_MAPS).
    #[serde(default)]
    pub data_local: usize,
    /// Attempts that ran on the rack of such a host (RACK_LOCAL_MAPS).
    #[serde(default)]
    pub rack_local: usize,
}

impl StageStats {
    /// The figures of a final stage: one run, its result rows, nothing written for a consumer.
    pub fn final_stage(stage: &Stage, rows: u64, spilled_bytes: u64, elapsed: Duration) -> Self {
        StageStats {
            stage: stage.id,
            exchange: None,
            tasks: stage.tasks(),
            output_rows: rows,
            output_bytes: 0,
            spilled_bytes,
            elapsed,
            attempts: stage.tasks(),
            reruns: 0,
            data_local: 0,
            rack_local: 0,
        }
    }
}

/// Progress as stages run, for a console progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StageProgress {
    /// The stage.
    pub stage: StageId,
    /// Stages in the query.
    pub stages: usize,
    /// Tasks done.
    pub done: usize,
    /// Tasks in the stage.
    pub total: usize,
    /// Rows written so far.
    pub rows: u64,
    /// Bytes written so far.
    pub bytes: u64,
}

/// Runs `plan` with its stage outputs in `scratch`, at most `parallelism` tasks at once; the
/// scratch directory is removed afterwards whatever the outcome.
pub async fn run_local(
    plan: &StagePlan,
    state: &SessionState,
    scratch: LocalStageDir,
    parallelism: usize,
    progress: &(dyn Fn(StageProgress) + Send + Sync),
) -> SqlResult<(Vec<RecordBatch>, Vec<StageStats>)> {
    let result = run_stages(plan, state, &scratch, parallelism.max(1), progress).await;
    let cleanup = scratch.remove_all();
    let out = result?;
    cleanup?;
    Ok(out)
}

fn task_context(state: &SessionState, inputs: &StageInputs) -> Arc<TaskContext> {
    let config = state
        .config()
        .clone()
        .with_extension(Arc::new(inputs.clone()));
    Arc::new(TaskContext::from(state).with_session_config(config))
}

/// A producer stage's figures while its tasks run.
#[derive(Default)]
struct StageRun {
    next_task: usize,
    done: usize,
    rows: u64,
    bytes: u64,
    started: Option<Instant>,
    elapsed: Duration,
}

async fn run_stages(
    plan: &StagePlan,
    state: &SessionState,
    scratch: &LocalStageDir,
    parallelism: usize,
    progress: &(dyn Fn(StageProgress) + Send + Sync),
) -> SqlResult<(Vec<RecordBatch>, Vec<StageStats>)> {
    let inputs = StageInputs::new(Arc::new(scratch.clone()));
    let (producers, last) = plan.stages.split_at(plan.stages.len() - 1);
    // Stages run as the cluster runs them: a stage's tasks may start once every stage it reads
    // is complete, so independent stages (the two sides of a join) run side by side. Each task
    // is a tokio task of its own: the plans are CPU-bound and must run on different workers.
    let position: HashMap<StageId, usize> = producers
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();
    let mut runs: Vec<StageRun> = producers.iter().map(|_| StageRun::default()).collect();
    let complete = |runs: &[StageRun], id: &StageId| {
        position
            .get(id)
            .is_none_or(|&i| runs[i].done == producers[i].tasks())
    };
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < parallelism {
            let ready = producers.iter().enumerate().find(|(i, s)| {
                runs[*i].next_task < s.tasks() && s.inputs.iter().all(|d| complete(&runs, d))
            });
            let Some((i, stage)) = ready else { break };
            let task = runs[i].next_task;
            runs[i].next_task += 1;
            runs[i].started.get_or_insert_with(Instant::now);
            let (stage, scratch) = (stage.clone(), scratch.clone());
            let ctx = task_context(state, &inputs);
            running.spawn(async move { (i, scratch.run_task(&stage, task, 0, ctx).await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, result) = joined.map_err(|e| {
            SqlError::DataFusion(datafusion::error::DataFusionError::Execution(format!(
                "a stage task panicked: {e}"
            )))
        })?;
        let manifest: TaskManifest = result?;
        let run = &mut runs[i];
        run.done += 1;
        run.rows += manifest.rows();
        run.bytes += manifest.bytes();
        if run.done == producers[i].tasks() {
            run.elapsed = run.started.map(|t| t.elapsed()).unwrap_or_default();
        }
        progress(StageProgress {
            stage: producers[i].id,
            stages: plan.stages.len(),
            done: run.done,
            total: producers[i].tasks(),
            rows: run.rows,
            bytes: run.bytes,
        });
    }
    let mut stats = Vec::with_capacity(plan.stages.len());
    for (stage, run) in producers.iter().zip(&runs) {
        stats.push(StageStats {
            stage: stage.id,
            exchange: stage.exchange,
            tasks: stage.tasks(),
            output_rows: run.rows,
            output_bytes: run.bytes,
            spilled_bytes: spilled_bytes(&stage.plan),
            elapsed: run.elapsed,
            attempts: stage.tasks(),
            reruns: 0,
            data_local: 0,
            rack_local: 0,
        });
    }
    let final_stage = &last[0];
    let started = Instant::now();
    let ctx = task_context(state, &inputs);
    let batches =
        crate::scan_errors::collect_partitions(Arc::clone(&final_stage.plan), ctx).await?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    progress(StageProgress {
        stage: final_stage.id,
        stages: plan.stages.len(),
        done: final_stage.tasks(),
        total: final_stage.tasks(),
        rows,
        bytes: 0,
    });
    stats.push(StageStats::final_stage(
        final_stage,
        rows,
        spilled_bytes(&final_stage.plan),
        started.elapsed(),
    ));
    Ok((batches, stats))
}

/// Bytes spilled by every operator of a plan fragment (from DataFusion's metrics).
pub fn spilled_bytes(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let mut total = 0u64;
    let mut pending = vec![Arc::clone(plan)];
    while let Some(node) = pending.pop() {
        if let Some(metrics) = node.metrics() {
            total += metrics.spilled_bytes().unwrap_or(0) as u64;
        }
        pending.extend(node.children().into_iter().cloned());
    }
    total
}
