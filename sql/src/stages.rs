//! Cutting a DataFusion physical plan into stages at its exchanges (Ballista's stage planner,
//! Spark's DAGScheduler).
//!
//! An exchange is where data must move between tasks: a hash repartition (`RepartitionExec`), a
//! coalesce to one partition (`CoalescePartitionsExec`), an order-preserving merge
//! (`SortPreservingMergeExec`), and the build side of a broadcast hash join (`HashJoinExec` in
//! `CollectLeft` mode). Below each exchange the subtree becomes its own [`Stage`], one task per
//! partition, writing its output partitions; above it a [`StageReaderExec`] reads them back. The
//! exchange operator itself stays in the consumer only where it still has work to do (the coalesce
//! and the merge read all producers' partitions; a repartition is done by the producers' writers).
//!
//! Round-robin repartitions are not cut: the session turns them off (scan parallelism comes from
//! splitting files along blocks instead), and any left over are kept inside their stage.

use crate::stage_store::StageInputs;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::JoinType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    displayable, ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan,
    ExecutionPlanProperties, Partitioning, PlanProperties, ReplaceChildrenOptions,
    SendableRecordBatchStream,
};
use std::fmt;
use std::sync::Arc;

/// A stage's index in its [`StagePlan`] (producers come before their consumers).
pub type StageId = usize;

/// How a stage's output is divided among the tasks of the stage that reads it.
#[derive(Debug, Clone)]
pub enum StageOutput {
    /// Task *t* writes one output partition that consumer partition *t* reads (feeds a coalesce,
    /// a merge or a broadcast).
    Passthrough,
    /// Every task splits its rows by DataFusion's partitioner; consumer partition *p* reads
    /// partition *p* of every producer task.
    Repartition(Partitioning),
}

impl StageOutput {
    /// Output partitions each task of the stage writes.
    pub fn partitions(&self) -> usize {
        match self {
            StageOutput::Passthrough => 1,
            StageOutput::Repartition(p) => p.partition_count(),
        }
    }
}

/// Which exchange separates a stage from its consumer (for EXPLAIN, counters and history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExchangeKind {
    /// Rows hash-partitioned by key (`RepartitionExec`).
    HashRepartition,
    /// All partitions read by one consumer task (`CoalescePartitionsExec`).
    Coalesce,
    /// All sorted partitions merged by one consumer task (`SortPreservingMergeExec`).
    SortedMerge,
    /// The small side of a hash join, read whole by every probe task.
    Broadcast,
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExchangeKind::HashRepartition => "hash repartition",
            ExchangeKind::Coalesce => "coalesce",
            ExchangeKind::SortedMerge => "sort-preserving merge",
            ExchangeKind::Broadcast => "broadcast",
        })
    }
}

/// One stage: a plan fragment run as one task per output partition of its root.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Its index.
    pub id: StageId,
    /// The fragment; stages it reads appear as [`StageReaderExec`] leaves.
    pub plan: Arc<dyn ExecutionPlan>,
    /// How its output is partitioned for the consumer (unused for the final stage).
    pub output: StageOutput,
    /// The exchange above it (`None` for the final stage).
    pub exchange: Option<ExchangeKind>,
    /// The consumer stage (`None` for the final stage).
    pub consumer: Option<StageId>,
    /// Stages whose output it reads.
    pub inputs: Vec<StageId>,
}

impl Stage {
    /// Tasks of this stage: one per partition of its plan.
    pub fn tasks(&self) -> usize {
        self.plan.output_partitioning().partition_count()
    }
}

/// A query cut into stages; the last one is the final stage, whose output is the result.
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// Producers first, the final stage last.
    pub stages: Vec<Stage>,
}

impl StagePlan {
    /// The stage whose output is the query's result.
    pub fn final_stage(&self) -> &Stage {
        // `cut` always pushes the final stage.
        &self.stages[self.stages.len() - 1]
    }

    /// The distributed plan as EXPLAIN shows it: each stage, its tasks, the exchange to its
    /// consumer and its fragment.
    pub fn display(&self) -> String {
        let mut out = String::new();
        for stage in &self.stages {
            let header = match (stage.exchange, stage.consumer) {
                (Some(ex), Some(c)) => format!(
                    "Stage {} [{} task{}] ──{}{}──► Stage {}",
                    stage.id,
                    stage.tasks(),
                    if stage.tasks() == 1 { "" } else { "s" },
                    ex,
                    match &stage.output {
                        StageOutput::Repartition(p) =>
                            format!(" ({} partitions)", p.partition_count()),
                        StageOutput::Passthrough => String::new(),
                    },
                    c
                ),
                _ => format!(
                    "Stage {} [{} task{}] (final: result)",
                    stage.id,
                    stage.tasks(),
                    if stage.tasks() == 1 { "" } else { "s" }
                ),
            };
            out.push_str(&header);
            out.push('\n');
            let fragment = displayable(stage.plan.as_ref()).indent(true).to_string();
            for line in fragment.lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Cuts `plan` into stages at its exchanges.
pub fn cut(plan: Arc<dyn ExecutionPlan>) -> Result<StagePlan> {
    let plan = partition_build_emitting_joins(plan)?;
    let mut cutter = Cutter { stages: Vec::new() };
    let root = cutter.visit(plan)?;
    let id = cutter.stages.len();
    let inputs = readers_of(&root);
    for input in &inputs {
        cutter.stages[*input].consumer = Some(id);
    }
    cutter.stages.push(Stage {
        id,
        plan: root,
        output: StageOutput::Passthrough,
        exchange: None,
        consumer: None,
        inputs,
    });
    Ok(StagePlan {
        stages: cutter.stages,
    })
}

/// A broadcast join that emits build-side rows after probing (LEFT, LEFT SEMI/ANTI, LEFT MARK,
/// FULL) learns which build rows matched from every probe partition, through state shared
/// inside one plan instance; tasks in separate processes do not share it. Such joins become
/// partitioned joins, both sides hash-partitioned by key, as Spark plans them (it never
/// broadcasts the preserved side): each task then sees every probe row that can match its build
/// rows. A null-aware anti join (`NOT IN`) needs to know whether *any* probe row is NULL, so it
/// stays a broadcast and runs as one task ([`Cutter::single_probe_task_if_needed`]).
fn partition_build_emitting_joins(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(join) = node.downcast_ref::<HashJoinExec>() else {
            return Ok(Transformed::no(node));
        };
        let partitions = join.right().output_partitioning().partition_count();
        if *join.partition_mode() != PartitionMode::CollectLeft
            || !emits_build_rows(join.join_type())
            || join.null_aware
            || partitions <= 1
        {
            return Ok(Transformed::no(node));
        }
        let build = match join.left().downcast_ref::<CoalescePartitionsExec>() {
            Some(coalesce) => Arc::clone(coalesce.input()),
            None => Arc::clone(join.left()),
        };
        let (build_keys, probe_keys): (Vec<_>, Vec<_>) = join
            .on()
            .iter()
            .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
            .unzip();
        let build = Arc::new(RepartitionExec::try_new(
            build,
            Partitioning::Hash(build_keys, partitions),
        )?);
        let probe = Arc::new(RepartitionExec::try_new(
            Arc::clone(join.right()),
            Partitioning::Hash(probe_keys, partitions),
        )?);
        let partitioned = join
            .builder()
            .with_partition_mode(PartitionMode::Partitioned)
            .with_new_children(vec![build, probe])?
            .reset_state()
            .recompute_properties()
            .build_exec()?;
        Ok(Transformed::yes(partitioned))
    })
    .map(|t| t.data)
}

/// Join types whose output includes build-side rows decided only after the whole probe side.
fn emits_build_rows(join_type: &JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Left
            | JoinType::LeftAnti
            | JoinType::LeftSemi
            | JoinType::LeftMark
            | JoinType::Full
    )
}

struct Cutter {
    stages: Vec<Stage>,
}

impl Cutter {
    fn visit(&mut self, node: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        // A scalar subquery's value reaches the expressions below it through state shared inside
        // one plan instance: its whole subtree runs within one stage.
        if node.downcast_ref::<ScalarSubqueryExec>().is_some() {
            return Ok(node);
        }
        // Bottom-up: children are cut first, so a stage's fragment only holds readers of earlier stages.
        let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
        let mut new_children = Vec::with_capacity(children.len());
        for child in &children {
            new_children.push(self.visit(Arc::clone(child))?);
        }
        let changed = children
            .iter()
            .zip(&new_children)
            .any(|(a, b)| !Arc::ptr_eq(a, b));
        let node = if changed {
            Arc::clone(&node).replace_children(
                new_children,
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )?
        } else {
            node
        };

        if let Some(repartition) = node.downcast_ref::<RepartitionExec>() {
            if matches!(repartition.partitioning(), Partitioning::Hash(..))
                && !repartition.preserve_order()
            {
                let partitioning = repartition.partitioning().clone();
                let input = Arc::clone(repartition.input());
                let stage = self.push(
                    input,
                    StageOutput::Repartition(partitioning.clone()),
                    ExchangeKind::HashRepartition,
                );
                return Ok(Arc::new(StageReaderExec::new(
                    stage,
                    &self.stages[stage],
                    partitioning,
                )));
            }
            return Ok(node);
        }
        if node.downcast_ref::<CoalescePartitionsExec>().is_some() {
            return self.cut_below(node, ExchangeKind::Coalesce);
        }
        if node.downcast_ref::<SortPreservingMergeExec>().is_some() {
            return self.cut_below(node, ExchangeKind::SortedMerge);
        }
        if let Some(join) = node.downcast_ref::<HashJoinExec>() {
            if *join.partition_mode() == PartitionMode::CollectLeft {
                return self.broadcast_build_side(node);
            }
        }
        Ok(node)
    }

    /// Cuts below a coalesce or merge: its input becomes a stage, its input partitions are read
    /// back one per reader partition, and the operator stays to combine them.
    fn cut_below(
        &mut self,
        node: Arc<dyn ExecutionPlan>,
        exchange: ExchangeKind,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = Arc::clone(node.children()[0]);
        if input.downcast_ref::<StageReaderExec>().is_some() {
            return Ok(node);
        }
        let reader = self.passthrough_reader(input, exchange);
        node.replace_children(
            vec![reader],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    /// The build side of a `CollectLeft` hash join becomes its own stage, which every probe task
    /// reads whole: the small side is computed once and shipped, the large side is not shuffled.
    fn broadcast_build_side(
        &mut self,
        join: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let children: Vec<Arc<dyn ExecutionPlan>> = join.children().into_iter().cloned().collect();
        let left = Arc::clone(&children[0]);
        // Usually the optimizer already put a coalesce there (cut above, relabel its stage).
        let already_cut = match left.downcast_ref::<CoalescePartitionsExec>() {
            Some(coalesce) => coalesce
                .input()
                .downcast_ref::<StageReaderExec>()
                .map(|r| r.stage),
            None => left.downcast_ref::<StageReaderExec>().map(|r| r.stage),
        };
        if let Some(stage) = already_cut {
            self.stages[stage].exchange = Some(ExchangeKind::Broadcast);
            let probe = self.single_probe_task_if_needed(&join, Arc::clone(&children[1]))?;
            if Arc::ptr_eq(&probe, &children[1]) {
                return Ok(join);
            }
            return join.replace_children(
                vec![left, probe],
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            );
        }
        let reader = self.passthrough_reader(left, ExchangeKind::Broadcast);
        let reader = if reader.output_partitioning().partition_count() > 1 {
            Arc::new(CoalescePartitionsExec::new(reader)) as Arc<dyn ExecutionPlan>
        } else {
            reader
        };
        let probe = self.single_probe_task_if_needed(&join, Arc::clone(&children[1]))?;
        join.replace_children(
            vec![reader, probe],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    /// A broadcast join that still emits build-side rows after probing (the null-aware anti join
    /// of `NOT IN`, see [`partition_build_emitting_joins`]) runs as one task: its probe side is cut
    /// into a stage and coalesced.
    fn single_probe_task_if_needed(
        &mut self,
        join: &Arc<dyn ExecutionPlan>,
        probe: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(hash_join) = join.downcast_ref::<HashJoinExec>() else {
            return Ok(probe);
        };
        if !emits_build_rows(hash_join.join_type())
            || probe.output_partitioning().partition_count() <= 1
        {
            return Ok(probe);
        }
        self.cut_below(
            Arc::new(CoalescePartitionsExec::new(probe)),
            ExchangeKind::Coalesce,
        )
    }

    fn passthrough_reader(
        &mut self,
        input: Arc<dyn ExecutionPlan>,
        exchange: ExchangeKind,
    ) -> Arc<dyn ExecutionPlan> {
        let partitions = input.output_partitioning().partition_count();
        let eq = input.equivalence_properties().clone();
        let stage = self.push(input, StageOutput::Passthrough, exchange);
        Arc::new(StageReaderExec::with_properties(
            stage,
            &self.stages[stage],
            eq,
            Partitioning::UnknownPartitioning(partitions),
        ))
    }

    fn push(
        &mut self,
        plan: Arc<dyn ExecutionPlan>,
        output: StageOutput,
        exchange: ExchangeKind,
    ) -> StageId {
        let id = self.stages.len();
        let inputs = readers_of(&plan);
        for input in &inputs {
            self.stages[*input].consumer = Some(id);
        }
        self.stages.push(Stage {
            id,
            plan,
            output,
            exchange: Some(exchange),
            consumer: None,
            inputs,
        });
        id
    }
}

/// The stages read by the readers in `plan` (not looking below readers).
fn readers_of(plan: &Arc<dyn ExecutionPlan>) -> Vec<StageId> {
    let mut out = Vec::new();
    let mut pending = vec![Arc::clone(plan)];
    while let Some(node) = pending.pop() {
        if let Some(reader) = node.downcast_ref::<StageReaderExec>() {
            out.push(reader.stage);
            continue;
        }
        pending.extend(node.children().into_iter().cloned());
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A leaf that reads a producer stage's output partitions (through the [`StageInputs`] of the
/// task's session: local files, or the NodeManagers' shuffle services on a cluster).
#[derive(Debug, Clone)]
pub struct StageReaderExec {
    /// The producer stage.
    pub stage: StageId,
    /// How the producer partitioned its output.
    pub output: StageOutput,
    /// Tasks of the producer stage.
    pub producer_tasks: usize,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl StageReaderExec {
    fn new(stage: StageId, producer: &Stage, partitioning: Partitioning) -> StageReaderExec {
        let eq = EquivalenceProperties::new(producer.plan.schema());
        Self::with_properties(stage, producer, eq, partitioning)
    }

    fn with_properties(
        stage: StageId,
        producer: &Stage,
        eq: EquivalenceProperties,
        partitioning: Partitioning,
    ) -> StageReaderExec {
        let properties = PlanProperties::new(
            eq,
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        StageReaderExec {
            stage,
            output: producer.output.clone(),
            producer_tasks: producer.tasks(),
            schema: producer.plan.schema(),
            properties: Arc::new(properties),
        }
    }

    /// The (producer task, output partition) pairs reader partition `partition` reads.
    pub fn sources(&self, partition: usize) -> Vec<(usize, usize)> {
        match self.output {
            StageOutput::Passthrough => vec![(partition, 0)],
            StageOutput::Repartition(_) => {
                (0..self.producer_tasks).map(|t| (t, partition)).collect()
            }
        }
    }
}

impl DisplayAs for StageReaderExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.output {
            StageOutput::Passthrough => write!(
                f,
                "StageReaderExec: stage={}, {} partition(s), one per producer task",
                self.stage, self.producer_tasks
            ),
            StageOutput::Repartition(p) => write!(
                f,
                "StageReaderExec: stage={}, {}, from {} producer task(s)",
                self.stage, p, self.producer_tasks
            ),
        }
    }
}

impl ExecutionPlan for StageReaderExec {
    fn name(&self) -> &str {
        "StageReaderExec"
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let inputs = context
            .session_config()
            .get_extension::<StageInputs>()
            .ok_or_else(|| {
                DataFusionError::Internal(
                    "a stage reader ran outside Sheaf's stage executor (no StageInputs)".into(),
                )
            })?;
        inputs.open(
            self.stage,
            self.sources(partition),
            Arc::clone(&self.schema),
        )
    }
}
