//! Randomized event sequences for the RM's two decision cores, like the JobTracker's: seeded,
//! thousands of sequences, invariants checked after every step. A failing seed is printed and
//! replays exactly.

use super::scheduler::Scheduler;
use super::state::{env, RmState};
use crate::config::{QueueConfig, ResourceManagerConfig, YarnConfig};
use crate::protocol::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

const SEQUENCES: u64 = 2000;
const STEPS: usize = 150;
const HOSTS: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];

/// Two leaf queues with lending limits: `a` may grow to 80 % of the cluster, `b` to 50 %.
fn queues() -> Vec<QueueConfig> {
    [("root.a", 60.0, 80.0), ("root.b", 40.0, 50.0)]
        .iter()
        .map(|(p, c, m)| QueueConfig {
            path: p.to_string(),
            capacity: *c,
            max_capacity: *m,
        })
        .collect()
}

fn random_ask(rng: &mut StdRng, ask_id: u64) -> ContainerAsk {
    let hosts = if rng.gen_bool(0.5) {
        vec![HOSTS[rng.gen_range(0..HOSTS.len())].to_string()]
    } else {
        vec![]
    };
    ContainerAsk {
        ask_id,
        count: rng.gen_range(1..=4),
        resource: Resource::new(rng.gen_range(1..=6) * 512, rng.gen_range(1..=2)),
        priority: rng.gen_range(0..3),
        hosts,
        racks: vec![],
        relax_locality: rng.gen_bool(0.8),
    }
}

/// What the test knows about one live container of the scheduler.
#[derive(Debug, Clone, Copy)]
struct Live {
    node: u64,
    resource: Resource,
    max_share: f64,
}

/// The scheduler under random node, attempt, ask, release and schedule events: no node is ever
/// over-allocated, no allocation takes a queue past its max capacity, container ids are never
/// reused and every container leaves exactly once (release, attempt or node removal).
#[test]
fn scheduler_random_event_sequences_keep_invariants() {
    for seed in 0..SEQUENCES {
        let mut rng = StdRng::seed_from_u64(seed);
        let yarn = YarnConfig {
            node_locality_delay: rng.gen_range(0..3),
            rack_locality_delay: rng.gen_range(0..4),
            ..YarnConfig::default()
        };
        let mut s = Scheduler::new(&queues(), &yarn).unwrap();
        let mut nodes: BTreeMap<u64, Resource> = BTreeMap::new();
        let mut next_node = 1u64;
        let mut attempts: BTreeMap<AttemptId, f64> = BTreeMap::new();
        let mut next_app = 1u32;
        let mut next_ask = 1u64;
        let mut live: HashMap<ContainerId, Live> = HashMap::new();
        let mut ever: BTreeSet<ContainerId> = BTreeSet::new();
        for step in 0..STEPS {
            let ctx = format!("seed {seed} step {step}");
            match rng.gen_range(0..100) {
                0..=9 if nodes.len() < HOSTS.len() => {
                    let total = Resource::new(rng.gen_range(2..=8) * 1024, rng.gen_range(2..=8));
                    let host = HOSTS[nodes.len()];
                    s.add_node(
                        next_node,
                        host,
                        if next_node.is_multiple_of(2) {
                            "/r1"
                        } else {
                            "/r2"
                        },
                        total,
                    );
                    nodes.insert(next_node, total);
                    next_node += 1;
                }
                10..=13 if !nodes.is_empty() => {
                    let id = *nodes.keys().nth(rng.gen_range(0..nodes.len())).unwrap();
                    nodes.remove(&id);
                    for c in s.remove_node(id) {
                        let l = live
                            .remove(&c)
                            .unwrap_or_else(|| panic!("{ctx}: {c} removed twice"));
                        assert_eq!(l.node, id, "{ctx}: {c} was not on node {id}");
                    }
                    assert!(
                        live.values().all(|l| l.node != id),
                        "{ctx}: containers left on a removed node"
                    );
                }
                14..=23 => {
                    let attempt = AttemptId {
                        app: AppId {
                            cluster_ts: 1,
                            seq: next_app,
                        },
                        attempt: 1,
                    };
                    next_app += 1;
                    let (queue, share) = if rng.gen_bool(0.5) {
                        ("root.a", 0.8)
                    } else {
                        ("root.b", 0.5)
                    };
                    s.add_attempt(attempt, queue).unwrap();
                    attempts.insert(attempt, share);
                }
                24..=27 if !attempts.is_empty() => {
                    let a = *attempts
                        .keys()
                        .nth(rng.gen_range(0..attempts.len()))
                        .unwrap();
                    attempts.remove(&a);
                    for c in s.remove_attempt(a) {
                        assert_eq!(c.attempt, a, "{ctx}");
                        assert!(live.remove(&c).is_some(), "{ctx}: {c} left twice");
                    }
                    assert!(
                        live.keys().all(|c| c.attempt != a),
                        "{ctx}: containers left of a removed attempt"
                    );
                }
                28..=47 if !attempts.is_empty() => {
                    let a = *attempts
                        .keys()
                        .nth(rng.gen_range(0..attempts.len()))
                        .unwrap();
                    let _ = s.add_ask(a, random_ask(&mut rng, next_ask));
                    next_ask += 1;
                }
                48..=51 if !attempts.is_empty() && next_ask > 1 => {
                    let a = *attempts
                        .keys()
                        .nth(rng.gen_range(0..attempts.len()))
                        .unwrap();
                    s.cancel_ask(a, rng.gen_range(1..next_ask));
                }
                52..=61 if !live.is_empty() => {
                    let mut ids: Vec<ContainerId> = live.keys().copied().collect();
                    ids.sort();
                    let c = ids[rng.gen_range(0..ids.len())];
                    assert!(s.release(c), "{ctx}: releasing live {c} failed");
                    live.remove(&c);
                    assert!(!s.release(c), "{ctx}: {c} released twice");
                }
                _ => {
                    let cluster_mb: u64 = nodes.values().map(|r| r.memory_mb).sum();
                    for p in s.schedule() {
                        assert!(
                            ever.insert(p.container),
                            "{ctx}: container id {} reused",
                            p.container
                        );
                        assert!(
                            nodes.contains_key(&p.node_id),
                            "{ctx}: placed on unknown node {}",
                            p.node_id
                        );
                        let max_share = *attempts
                            .get(&p.container.attempt)
                            .unwrap_or_else(|| panic!("{ctx}: placed for unknown attempt"));
                        live.insert(
                            p.container,
                            Live {
                                node: p.node_id,
                                resource: p.resource,
                                max_share,
                            },
                        );
                        // The queue of this placement stays within its max capacity.
                        let queue_mb: u64 = live
                            .values()
                            .filter(|l| l.max_share == max_share)
                            .map(|l| l.resource.memory_mb)
                            .sum();
                        assert!(
                            queue_mb as f64 <= max_share * cluster_mb as f64 + 0.5,
                            "{ctx}: queue with max {max_share} uses {queue_mb} of {cluster_mb} MB"
                        );
                    }
                }
            }
            // Never over-allocate a node, and the scheduler's books match the containers.
            for (id, total) in &nodes {
                let (mb, vc, n) = live
                    .values()
                    .filter(|l| l.node == *id)
                    .fold((0u64, 0u32, 0u32), |(m, v, n), l| {
                        (m + l.resource.memory_mb, v + l.resource.vcores, n + 1)
                    });
                assert!(
                    mb <= total.memory_mb && vc <= total.vcores,
                    "{ctx}: node {id} over-allocated: {mb} MB / {vc} vcores of {total:?}"
                );
                let usage = s
                    .node_usage(*id)
                    .unwrap_or_else(|| panic!("{ctx}: node {id} unknown"));
                assert_eq!(
                    (usage.used, usage.containers),
                    (Resource::new(mb, vc), n),
                    "{ctx}: node {id}"
                );
            }
        }
    }
}

/// What the test remembers of one application between steps.
#[derive(Debug, Clone, Copy)]
struct Seen {
    state: AppState,
    attempt: u32,
}

fn legal(from: Seen, to: Seen) -> bool {
    use AppState::*;
    if from.state.is_final() {
        return to.state == from.state && to.attempt == from.attempt;
    }
    if to.attempt < from.attempt {
        return false;
    }
    match (from.state, to.state) {
        (a, b) if a == b => to.attempt == from.attempt || b == Accepted,
        (New, Accepted) | (Accepted, Running) => true,
        // A failed master's next attempt waits for its container again.
        (Running, Accepted) => to.attempt > from.attempt,
        (_, Finished | Failed | Killed) => true,
        _ => false,
    }
}

/// The RM state machine under random submissions, masters that register, ask, start, finish or
/// die, kills, node heartbeats and node loss: application states move only along legal
/// transitions, attempts never exceed their maximum, nodes are never over-allocated and a
/// container's state never goes back.
#[test]
fn rm_state_random_event_sequences_keep_invariants() {
    for seed in 0..SEQUENCES / 2 {
        let mut rng = StdRng::seed_from_u64(seed);
        let rm = ResourceManagerConfig {
            node_timeout_ms: 1_000,
            max_completed_apps: 1_000,
            ..ResourceManagerConfig::default()
        };
        let yarn = YarnConfig::default();
        let start = Instant::now();
        let mut now = start;
        let mut s = RmState::new(
            &rm,
            &yarn,
            &super::scheduler::default_queues(),
            now,
            1_000,
            seed,
        )
        .unwrap();
        // node id → host; containers each node was told to run.
        let mut nodes: BTreeMap<u64, &str> = BTreeMap::new();
        let mut running: BTreeMap<u64, Vec<ContainerId>> = BTreeMap::new();
        // Masters that were launched: attempt → token.
        let mut masters: BTreeMap<AttemptId, u64> = BTreeMap::new();
        let mut allocated: BTreeMap<AttemptId, Vec<ContainerId>> = BTreeMap::new();
        let mut seen: BTreeMap<AppId, Seen> = BTreeMap::new();
        let mut container_states: HashMap<ContainerId, ContainerState> = HashMap::new();
        let mut next_ask = 1u64;
        for step in 0..STEPS {
            let ctx = format!("seed {seed} step {step}");
            match rng.gen_range(0..100) {
                0..=7 => {
                    let host = HOSTS[rng.gen_range(0..HOSTS.len())];
                    let id = s.register_node(
                        RegisterNode {
                            host: host.into(),
                            rack: "/r".into(),
                            capability: Resource::new(
                                rng.gen_range(1..=4) * 1024,
                                rng.gen_range(1..=4),
                            ),
                            aux_services: BTreeMap::new(),
                            running: vec![],
                        },
                        now,
                    );
                    nodes.retain(|_, h| *h != host);
                    nodes.insert(id, host);
                    running.insert(id, Vec::new());
                }
                8..=17 => {
                    let sub = SubmitApplication {
                        name: "r".into(),
                        user: "u".into(),
                        queue: "default".into(),
                        am_resource: Resource::new(rng.gen_range(1..=2) * 512, 1),
                        am_spec: LaunchSpec {
                            command: vec!["am".into()],
                            ..LaunchSpec::default()
                        },
                        max_attempts: rng.gen_range(0..=3),
                    };
                    let _ = s.submit(sub, now);
                }
                18..=29 if !masters.is_empty() => {
                    let (a, t) = masters
                        .iter()
                        .nth(rng.gen_range(0..masters.len()))
                        .map(|(a, t)| (*a, *t))
                        .unwrap();
                    match rng.gen_range(0..4) {
                        0 => {
                            let _ = s.register_master(a, t, None);
                        }
                        1 => {
                            let ask = random_ask(&mut rng, next_ask);
                            next_ask += 1;
                            let mine = allocated.get(&a).cloned().unwrap_or_default();
                            let release = mine.into_iter().filter(|_| rng.gen_bool(0.2)).collect();
                            let _ = s.allocate(&Allocate {
                                attempt: a,
                                token: t,
                                asks: vec![ask],
                                cancel_asks: vec![],
                                release,
                                wait_ms: 0,
                            });
                        }
                        2 => {
                            let news = s.take_allocation(a, t);
                            let ids: Vec<ContainerId> =
                                news.allocated.iter().map(|c| c.id).collect();
                            allocated.entry(a).or_default().extend(ids.iter().copied());
                            let launches = ids
                                .into_iter()
                                .map(|id| {
                                    (
                                        id,
                                        LaunchSpec {
                                            command: vec!["task".into()],
                                            ..LaunchSpec::default()
                                        },
                                    )
                                })
                                .collect();
                            let _ = s.start_containers(a, t, launches);
                        }
                        _ => {
                            let status = if rng.gen_bool(0.5) {
                                FinalStatus::Succeeded
                            } else {
                                FinalStatus::Failed
                            };
                            let _ = s.finish_master(a, t, status, String::new(), now);
                        }
                    }
                }
                30..=33 if !seen.is_empty() => {
                    let app = *seen.keys().nth(rng.gen_range(0..seen.len())).unwrap();
                    let _ = s.kill(app, now);
                }
                34..=59 if !nodes.is_empty() => {
                    // A heartbeat: some of the node's containers run, some complete.
                    let id = *nodes.keys().nth(rng.gen_range(0..nodes.len())).unwrap();
                    let mine = running.get(&id).cloned().unwrap_or_default();
                    let statuses: Vec<ContainerStatus> = mine
                        .iter()
                        .map(|c| ContainerStatus {
                            id: *c,
                            state: if rng.gen_bool(0.3) {
                                ContainerState::Complete
                            } else {
                                ContainerState::Running
                            },
                            exit_status: if rng.gen_bool(0.7) { 0 } else { 1 },
                            diagnostics: String::new(),
                        })
                        .collect();
                    if s.node_heartbeat(id, &statuses, now).is_none() {
                        nodes.remove(&id);
                        running.remove(&id);
                        continue;
                    }
                    let done: BTreeSet<ContainerId> = statuses
                        .iter()
                        .filter(|c| c.state == ContainerState::Complete)
                        .map(|c| c.id)
                        .collect();
                    let cmds = s.take_node_commands(id);
                    let list = running.entry(id).or_default();
                    list.retain(|c| !done.contains(c));
                    for l in &cmds.launch {
                        list.push(l.id);
                        if let Some(token) = l.spec.env.get(env::AM_TOKEN) {
                            masters.insert(l.id.attempt, token.parse().unwrap());
                        }
                    }
                    // A stopped container ends: the NodeManager reports it complete next time.
                    let _ = cmds.stop;
                }
                60..=64 => {
                    now += Duration::from_millis(rng.gen_range(100..=700));
                    if s.tick(now) {
                        let lost: Vec<u64> = s
                            .node_reports(now)
                            .iter()
                            .filter(|n| n.state == "LOST")
                            .filter_map(|n| {
                                nodes.iter().find(|(_, h)| **h == n.host).map(|(id, _)| *id)
                            })
                            .collect();
                        for id in lost {
                            if s.take_node_commands(id).reregister {
                                nodes.remove(&id);
                                running.remove(&id);
                            }
                        }
                    }
                }
                _ => {
                    s.schedule();
                }
            }
            // Legal application transitions, attempts within their maximum.
            for r in s.list(&[]) {
                let now_seen = Seen {
                    state: r.state,
                    attempt: r.attempt,
                };
                if let Some(before) = seen.get(&r.id) {
                    assert!(
                        legal(*before, now_seen),
                        "{ctx}: {} went {before:?} -> {now_seen:?}",
                        r.id
                    );
                }
                assert!(
                    r.attempt <= r.max_attempts,
                    "{ctx}: {} at attempt {} of {}",
                    r.id,
                    r.attempt,
                    r.max_attempts
                );
                seen.insert(r.id, now_seen);
                for c in &r.containers {
                    let rank = |s: ContainerState| match s {
                        ContainerState::New => 0,
                        ContainerState::Running => 1,
                        ContainerState::Complete => 2,
                    };
                    if let Some(before) = container_states.insert(c.id, c.state) {
                        assert!(
                            rank(c.state) >= rank(before),
                            "{ctx}: {} went {before:?} -> {:?}",
                            c.id,
                            c.state
                        );
                    }
                }
            }
            // No node over-allocated.
            for n in s.node_reports(now) {
                assert!(
                    n.used.memory_mb <= n.capability.memory_mb
                        && n.used.vcores <= n.capability.vcores,
                    "{ctx}: {} uses {:?} of {:?}",
                    n.host,
                    n.used,
                    n.capability
                );
            }
        }
    }
}
