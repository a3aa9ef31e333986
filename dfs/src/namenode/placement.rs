//! Where new replicas go (DESIGN §4, Hadoop's default policy): the first on the writer's node
//! if it is a live DataNode, the second on another rack, the third on the second's rack on
//! another node, more at random; with fewer racks or nodes the rule degrades gracefully, and
//! never are two replicas of a block on one node. Pure: the caller supplies the nodes and the
//! random source.

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashSet;
use std::net::IpAddr;

/// A live DataNode as placement sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// DataNode uuid.
    pub uuid: String,
    /// Its host address.
    pub host: IpAddr,
    /// Its rack.
    pub rack: String,
    /// Bytes it can still take.
    pub remaining: u64,
    /// Replication streams already scheduled to it (throttling).
    pub busy: bool,
}

/// What one placement decision needs besides the nodes.
#[derive(Debug, Clone)]
pub struct PlacementRequest<'a> {
    /// Replicas wanted.
    pub count: usize,
    /// The writer's host (first replica goes there if it is a DataNode).
    pub writer: Option<IpAddr>,
    /// Nodes already holding the block (re-replication): they shape the rack choice and are
    /// never chosen again.
    pub existing: &'a [String],
    /// Nodes that must not be chosen (client-excluded, holding a corrupt copy, pending targets).
    pub excluded: &'a HashSet<String>,
    /// A node needs at least this much remaining space (one block).
    pub min_remaining: u64,
}

/// The block placement policy.
pub struct BlockPlacement;

impl BlockPlacement {
    /// Chooses up to `req.count` target nodes (uuids) in pipeline order.
    pub fn choose_targets(
        nodes: &[Candidate],
        req: &PlacementRequest<'_>,
        rng: &mut impl Rng,
    ) -> Vec<String> {
        let mut chosen: Vec<&Candidate> = req
            .existing
            .iter()
            .filter_map(|u| nodes.iter().find(|n| &n.uuid == u))
            .collect();
        let mut taken: HashSet<&str> = req.existing.iter().map(String::as_str).collect();
        let mut result = Vec::new();
        for _ in 0..req.count {
            let pool: Vec<&Candidate> = nodes
                .iter()
                .filter(|n| {
                    !taken.contains(n.uuid.as_str())
                        && !req.excluded.contains(&n.uuid)
                        && !n.busy
                        && n.remaining >= req.min_remaining
                })
                .collect();
            if pool.is_empty() {
                break;
            }
            let pick = match chosen.len() {
                0 => req
                    .writer
                    .and_then(|w| pool.iter().copied().find(|n| n.host == w))
                    .or_else(|| pool.choose(rng).copied()),
                1 => pick_where(&pool, rng, |n| n.rack != chosen[0].rack),
                2 if chosen[0].rack == chosen[1].rack => {
                    pick_where(&pool, rng, |n| n.rack != chosen[0].rack)
                }
                2 => pick_where(&pool, rng, |n| n.rack == chosen[1].rack),
                _ => pool.choose(rng).copied(),
            };
            let Some(pick) = pick else { break };
            taken.insert(pick.uuid.as_str());
            chosen.push(pick);
            result.push(pick.uuid.clone());
        }
        result
    }
}

/// A random node satisfying `preferred`, else any random node of the pool.
fn pick_where<'a>(
    pool: &[&'a Candidate],
    rng: &mut impl Rng,
    preferred: impl Fn(&Candidate) -> bool,
) -> Option<&'a Candidate> {
    let good: Vec<&'a Candidate> = pool.iter().copied().filter(|n| preferred(n)).collect();
    good.choose(rng)
        .copied()
        .or_else(|| pool.choose(rng).copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn node(i: u8, rack: &str) -> Candidate {
        Candidate {
            uuid: format!("dn{i}"),
            host: IpAddr::from([127, 0, 0, i]),
            rack: rack.into(),
            remaining: 1 << 30,
            busy: false,
        }
    }

    fn cluster() -> Vec<Candidate> {
        vec![
            node(2, "/r1"),
            node(3, "/r1"),
            node(4, "/r2"),
            node(5, "/r2"),
            node(6, "/r3"),
        ]
    }

    fn rack<'a>(nodes: &'a [Candidate], uuid: &str) -> &'a str {
        &nodes.iter().find(|n| n.uuid == uuid).unwrap().rack
    }

    #[test]
    fn writer_local_then_remote_rack_then_same_rack_as_second() {
        // Every rack has two nodes, so the rule never needs its fallback.
        let mut nodes = cluster();
        nodes.push(node(7, "/r3"));
        let none = HashSet::new();
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let req = PlacementRequest {
                count: 3,
                writer: Some(IpAddr::from([127, 0, 0, 3])),
                existing: &[],
                excluded: &none,
                min_remaining: 1,
            };
            let t = BlockPlacement::choose_targets(&nodes, &req, &mut rng);
            assert_eq!(t.len(), 3);
            assert_eq!(t[0], "dn3");
            assert_ne!(rack(&nodes, &t[1]), "/r1");
            assert_eq!(rack(&nodes, &t[2]), rack(&nodes, &t[1]));
            assert_ne!(t[2], t[1]);
        }
    }

    #[test]
    fn non_datanode_writer_gets_any_first_node_and_no_duplicates() {
        let nodes = cluster();
        let none = HashSet::new();
        let mut rng = StdRng::seed_from_u64(7);
        let req = PlacementRequest {
            count: 8,
            writer: Some("10.0.0.1".parse().unwrap()),
            existing: &[],
            excluded: &none,
            min_remaining: 1,
        };
        let t = BlockPlacement::choose_targets(&nodes, &req, &mut rng);
        assert_eq!(t.len(), 5, "only five nodes exist");
        let uniq: HashSet<_> = t.iter().collect();
        assert_eq!(uniq.len(), 5);
    }

    #[test]
    fn single_rack_and_fewer_nodes_fall_back() {
        let nodes = vec![node(2, "/r1"), node(3, "/r1")];
        let none = HashSet::new();
        let mut rng = StdRng::seed_from_u64(1);
        let req = PlacementRequest {
            count: 3,
            writer: None,
            existing: &[],
            excluded: &none,
            min_remaining: 1,
        };
        let t = BlockPlacement::choose_targets(&nodes, &req, &mut rng);
        assert_eq!(t.len(), 2);
        assert_ne!(t[0], t[1]);
    }

    #[test]
    fn skips_excluded_full_and_existing_nodes() {
        let mut nodes = cluster();
        nodes[2].remaining = 10; // dn4 nearly full
        let excluded: HashSet<String> = ["dn5".to_string()].into();
        let existing = vec!["dn2".to_string()];
        for seed in 0..100 {
            let mut rng = StdRng::seed_from_u64(seed);
            let req = PlacementRequest {
                count: 2,
                writer: None,
                existing: &existing,
                excluded: &excluded,
                min_remaining: 1000,
            };
            let t = BlockPlacement::choose_targets(&nodes, &req, &mut rng);
            assert_eq!(t.len(), 2);
            assert!(
                !t.contains(&"dn2".to_string())
                    && !t.contains(&"dn4".to_string())
                    && !t.contains(&"dn5".to_string())
            );
            // With one existing replica on /r1, the next goes to another rack: only dn6 (/r3) is left there.
            assert_eq!(t[0], "dn6");
        }
    }

    #[test]
    fn third_replica_goes_off_rack_when_first_two_share_a_rack() {
        let nodes = cluster();
        let none = HashSet::new();
        let existing = vec!["dn2".to_string(), "dn3".to_string()];
        for seed in 0..100 {
            let mut rng = StdRng::seed_from_u64(seed);
            let req = PlacementRequest {
                count: 1,
                writer: None,
                existing: &existing,
                excluded: &none,
                min_remaining: 1,
            };
            let t = BlockPlacement::choose_targets(&nodes, &req, &mut rng);
            assert_ne!(rack(&nodes, &t[0]), "/r1");
        }
    }
}
