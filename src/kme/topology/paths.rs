//! Routes from the link-state database: the graph of usable links and the paths a relay
//! takes over it.
//!
//! A link counts only when both its ends report it (a KME cannot claim a link its peer does
//! not have). In the direction u → v it carries the pad u may spend towards v, as the
//! smaller of what u reports sending and what v reports receiving (the two differ while a
//! relay or a refill is under way), and no key at all while either end reports an alarm.
//!
//! [`best_path`] picks, among paths with at least the relay's bits on every hop, the one
//! that can carry the most such relays at its bottleneck, and among those the one through
//! the fewest trusted nodes (exactly, by hop count: a dynamic program over path lengths,
//! since widest-then-shortest is not a metric Dijkstra's algorithm can order).
//! [`disjoint_paths`] finds paths that share no KME but the two ends (a maximum flow over
//! the graph with each KME split in two), for a key relayed in shares.

use super::database::LinkStateDb;
use super::{KmeId, LinkReport};
use std::collections::{BTreeMap, VecDeque};

/// One direction of a link both ends report.
#[derive(Clone, Debug, PartialEq)]
pub struct Hop {
    /// Sending end.
    pub from: KmeId,
    /// Receiving end.
    pub to: KmeId,
    /// Pad bits the sender may spend on it.
    pub bits: u64,
    /// Either end reports an alarm.
    pub alarm: bool,
}

/// The usable directions of every link, from the adverts held.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<KmeId>,
    /// Per node index: (neighbour index, pad bits towards it, alarm).
    out: Vec<Vec<(usize, u64, bool)>>,
}

/// A path for a relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// The KMEs in order, the master's KME first and the slave's last.
    pub kmes: Vec<KmeId>,
    /// The fewest pad bits on any of its hops.
    pub bottleneck_bits: u64,
}

impl Path {
    /// The route as a relay names it: every KME after the first.
    pub fn route(&self) -> Vec<String> {
        self.kmes[1..].iter().map(|k| k.0.clone()).collect()
    }

    /// Trusted nodes on it (KMEs other than the two ends).
    pub fn trusted_nodes(&self) -> usize {
        self.kmes.len().saturating_sub(2)
    }
}

/// Why no route was found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    /// An end is not in the graph (no advert of it, or no link both ends report).
    #[error(
        "no route from '{from}' to '{to}': '{missing}' is not in the key network as known here"
    )]
    UnknownKme {
        /// Master's KME.
        from: KmeId,
        /// Slave's KME.
        to: KmeId,
        /// The end not known.
        missing: KmeId,
    },
    /// Every path has a link under alarm or short of pad.
    #[error(
        "no route from '{from}' to '{to}' with {need_bits} bits of pad on every link and none under alarm"
    )]
    NoPath {
        /// Master's KME.
        from: KmeId,
        /// Slave's KME.
        to: KmeId,
        /// Pad needed on each hop.
        need_bits: u64,
    },
    /// Fewer node-disjoint paths than asked for.
    #[error(
        "only {found} node-disjoint paths from '{from}' to '{to}' with {need_bits} bits of pad on every link and none under alarm, {wanted} wanted"
    )]
    TooFewDisjoint {
        /// Master's KME.
        from: KmeId,
        /// Slave's KME.
        to: KmeId,
        /// Pad needed on each hop.
        need_bits: u64,
        /// Paths found.
        found: usize,
        /// Paths asked for.
        wanted: usize,
    },
}

impl Graph {
    /// The graph of the adverts in `db`.
    pub fn from_db(db: &LinkStateDb) -> Self {
        let reports: BTreeMap<(&KmeId, &KmeId), &LinkReport> = db
            .adverts()
            .flat_map(|a| a.links.iter().map(move |l| ((&a.origin, &l.peer), l)))
            .collect();
        let mut g = Graph::default();
        for (&(u, v), &ours) in &reports {
            let Some(&theirs) = reports.get(&(v, u)) else {
                continue; // one end only: not a link
            };
            let (ui, vi) = (g.index(u), g.index(v));
            let bits = ours.send_bits.min(theirs.receive_bits);
            g.out[ui].push((vi, bits, ours.alarm || theirs.alarm));
        }
        g
    }

    fn index(&mut self, k: &KmeId) -> usize {
        if let Some(i) = self.nodes.iter().position(|n| n == k) {
            return i;
        }
        self.nodes.push(k.clone());
        self.out.push(Vec::new());
        self.nodes.len() - 1
    }

    fn find(&self, k: &KmeId) -> Option<usize> {
        self.nodes.iter().position(|n| n == k)
    }

    /// Every usable direction, alarmed or not.
    pub fn hops(&self) -> Vec<Hop> {
        self.out
            .iter()
            .enumerate()
            .flat_map(|(u, outs)| {
                outs.iter().map(move |&(v, bits, alarm)| Hop {
                    from: self.nodes[u].clone(),
                    to: self.nodes[v].clone(),
                    bits,
                    alarm,
                })
            })
            .collect()
    }

    /// Edges a relay of `need_bits` may use: no alarm, enough pad.
    fn usable(&self, u: usize, need_bits: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.out[u]
            .iter()
            .filter(move |&&(_, bits, alarm)| !alarm && bits >= need_bits)
            .map(|&(v, bits, _)| (v, bits))
    }

    fn ends(&self, from: &KmeId, to: &KmeId) -> Result<(usize, usize), RouteError> {
        let missing = |k: &KmeId| RouteError::UnknownKme {
            from: from.clone(),
            to: to.clone(),
            missing: k.clone(),
        };
        let s = self.find(from).ok_or_else(|| missing(from))?;
        let t = self.find(to).ok_or_else(|| missing(to))?;
        Ok((s, t))
    }
}

/// The best path from `from` to `to` for a relay spending `need_bits` (at least 1) on each
/// hop: every hop without alarm and with at least `need_bits`; the most relays of that size
/// left at its bottleneck; then the fewest hops; then the first by KME IDs.
pub fn best_path(g: &Graph, from: &KmeId, to: &KmeId, need_bits: u64) -> Result<Path, RouteError> {
    let need_bits = need_bits.max(1);
    let (s, t) = g.ends(from, to)?;
    let n = g.nodes.len();
    let no_path = || RouteError::NoPath {
        from: from.clone(),
        to: to.clone(),
        need_bits,
    };
    if s == t {
        return Err(no_path());
    }
    // wide[h][v]: the widest bottleneck of a path from s to v with at most h hops, and the
    // node before v on it when that path has exactly h hops (else level h - 1 holds it).
    let mut wide: Vec<Vec<(Option<u64>, Option<usize>)>> = vec![vec![(None, None); n]];
    wide[0][s] = (Some(u64::MAX), None);
    for h in 1..n {
        let mut level = wide[h - 1]
            .iter()
            .map(|&(w, _)| (w, None))
            .collect::<Vec<_>>();
        for (u, &(wu, _)) in wide[h - 1].iter().enumerate() {
            let Some(wu) = wu else { continue };
            for (v, bits) in g.usable(u, need_bits) {
                let cand = wu.min(bits);
                let better = match level[v].0 {
                    None => true,
                    Some(w) if cand > w => true,
                    Some(w) if cand == w && level[v].1.is_some() => {
                        // same width at the same length: the smaller previous KME ID
                        g.nodes[u] < g.nodes[level[v].1.expect("checked")]
                    }
                    _ => false,
                };
                if better && v != s {
                    level[v] = (Some(cand), Some(u));
                }
            }
        }
        wide.push(level);
    }
    // the most relays left at the bottleneck, then the fewest hops
    let relays = |h: usize| wide[h][t].0.map(|w| w / need_bits);
    let best = (1..n).filter_map(relays).max().ok_or_else(no_path)?;
    let hops = (1..n)
        .find(|&h| relays(h) == Some(best))
        .expect("the best is reached at some length");
    let mut kmes = vec![g.nodes[t].clone()];
    let (mut v, mut h) = (t, hops);
    while v != s {
        // (without a node before it at this length, v was reached with fewer hops)
        if let Some(u) = wide[h][v].1 {
            v = u;
            kmes.push(g.nodes[v].clone());
        }
        h -= 1;
    }
    kmes.reverse();
    Ok(Path {
        kmes,
        bottleneck_bits: wide[hops][t].0.expect("reached"),
    })
}

/// `wanted` paths from `from` to `to` that share no KME but the two ends, each hop without
/// alarm and with at least `need_bits`; shortest first. A direct link counts as one path.
pub fn disjoint_paths(
    g: &Graph,
    from: &KmeId,
    to: &KmeId,
    wanted: usize,
    need_bits: u64,
) -> Result<Vec<Path>, RouteError> {
    let need_bits = need_bits.max(1);
    let (s, t) = g.ends(from, to)?;
    let n = g.nodes.len();
    // Node v becomes v_in = 2v and v_out = 2v + 1 joined by capacity 1 (the ends: wanted);
    // a usable link u → v becomes u_out → v_in with capacity 1.
    let mut cap: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); 2 * n];
    let mut add = |a: usize, b: usize, c: i64, adj: &mut Vec<Vec<usize>>| {
        *cap.entry((a, b)).or_insert(0) += c;
        cap.entry((b, a)).or_insert(0);
        adj[a].push(b);
        adj[b].push(a);
    };
    for v in 0..n {
        let c = if v == s || v == t { wanted as i64 } else { 1 };
        add(2 * v, 2 * v + 1, c, &mut adj);
        for (w, _) in g.usable(v, need_bits) {
            add(2 * v + 1, 2 * w, 1, &mut adj);
        }
    }
    let (source, sink) = (2 * s + 1, 2 * t);
    let mut flow: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    let residual = |a: usize, b: usize, flow: &BTreeMap<(usize, usize), i64>| {
        cap.get(&(a, b)).copied().unwrap_or(0) - flow.get(&(a, b)).copied().unwrap_or(0)
    };
    let mut found = 0;
    while found < wanted {
        // shortest augmenting path (BFS over the residual graph)
        let mut prev = vec![usize::MAX; 2 * n];
        prev[source] = source;
        let mut queue = VecDeque::from([source]);
        while let Some(a) = queue.pop_front() {
            for &b in &adj[a] {
                if prev[b] == usize::MAX && residual(a, b, &flow) > 0 {
                    prev[b] = a;
                    queue.push_back(b);
                }
            }
        }
        if prev[sink] == usize::MAX {
            break;
        }
        let mut b = sink;
        while b != source {
            let a = prev[b];
            *flow.entry((a, b)).or_insert(0) += 1;
            *flow.entry((b, a)).or_insert(0) -= 1;
            b = a;
        }
        found += 1;
    }
    if found < wanted {
        return Err(RouteError::TooFewDisjoint {
            from: from.clone(),
            to: to.clone(),
            need_bits,
            found,
            wanted,
        });
    }
    // each unit of flow out of s is one path: follow it, consuming it
    let mut paths = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        let mut kmes = vec![g.nodes[s].clone()];
        let mut bottleneck = u64::MAX;
        let mut v = s;
        while v != t {
            let out = 2 * v + 1;
            let (w, bits) = g
                .usable(v, need_bits)
                .find(|&(w, _)| flow.get(&(out, 2 * w)).copied().unwrap_or(0) > 0)
                .expect("flow conservation: a unit that enters leaves");
            *flow.get_mut(&(out, 2 * w)).expect("found") -= 1;
            bottleneck = bottleneck.min(bits);
            kmes.push(g.nodes[w].clone());
            v = w;
        }
        paths.push(Path {
            kmes,
            bottleneck_bits: bottleneck,
        });
    }
    paths.sort_by_key(|p| p.kmes.len());
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kme::topology::LinkStateAdvert;
    use std::time::{Duration, Instant};

    /// Links as (a, b, bits each way); `alarmed` links report an alarm at a's end.
    fn net(links: &[(&str, &str, u64)], alarmed: &[(&str, &str)]) -> Graph {
        let mut by_origin: BTreeMap<&str, Vec<LinkReport>> = BTreeMap::new();
        for &(a, b, bits) in links {
            let alarm = alarmed.contains(&(a, b)) || alarmed.contains(&(b, a));
            for (x, y) in [(a, b), (b, a)] {
                by_origin.entry(x).or_default().push(LinkReport {
                    peer: y.into(),
                    send_bits: bits,
                    receive_bits: bits,
                    key_rate_bps: 0.0,
                    alarm: alarm && x == a,
                    excess_noise: None,
                });
            }
        }
        let mut db = LinkStateDb::new(Duration::from_secs(60));
        let now = Instant::now();
        for (origin, links) in by_origin {
            db.offer(
                LinkStateAdvert {
                    origin: origin.into(),
                    seq: 1,
                    links,
                },
                now,
            )
            .unwrap();
        }
        Graph::from_db(&db)
    }

    fn ids(p: &Path) -> Vec<&str> {
        p.kmes.iter().map(KmeId::as_str).collect()
    }

    /// Madrid with a second path: ha - r1 - r2 - hb around the ring, and ha - x - hb.
    fn madrid(ring_bits: u64, backup_bits: u64) -> Vec<(&'static str, &'static str, u64)> {
        vec![
            ("ha", "r1", ring_bits),
            ("r1", "r2", ring_bits),
            ("r2", "hb", ring_bits),
            ("ha", "x", backup_bits),
            ("x", "hb", backup_bits),
        ]
    }

    #[test]
    fn the_path_with_the_most_relays_left_at_its_bottleneck_wins_then_the_shortest() {
        let g = net(&madrid(10_000, 5_000), &[]);
        let p = best_path(&g, &"ha".into(), &"hb".into(), 256).unwrap();
        assert_eq!(ids(&p), ["ha", "r1", "r2", "hb"], "more pad on the ring");
        assert_eq!(p.bottleneck_bits, 10_000);
        assert_eq!(p.route(), ["r1", "r2", "hb"]);
        assert_eq!(p.trusted_nodes(), 2);
        // equal relays left (39 of 256 bits each way): fewer trusted nodes
        let g = net(&madrid(10_000, 10_100), &[]);
        let p = best_path(&g, &"ha".into(), &"hb".into(), 256).unwrap();
        assert_eq!(ids(&p), ["ha", "x", "hb"]);
        let g = net(&madrid(10_000, 9_900), &[]);
        let p = best_path(&g, &"ha".into(), &"hb".into(), 256).unwrap();
        assert_eq!(
            ids(&p),
            ["ha", "r1", "r2", "hb"],
            "38 relays left against 39: fewer hops win only on a tie"
        );
    }

    #[test]
    fn an_alarmed_or_short_link_is_never_on_a_path() {
        let g = net(&madrid(10_000, 5_000), &[("r1", "r2")]);
        let p = best_path(&g, &"ha".into(), &"hb".into(), 256).unwrap();
        assert_eq!(ids(&p), ["ha", "x", "hb"], "around the alarmed ring fiber");
        let g = net(&madrid(10_000, 5_000), &[("r1", "r2"), ("x", "hb")]);
        let e = best_path(&g, &"ha".into(), &"hb".into(), 256).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no route from 'ha' to 'hb' with 256 bits of pad on every link and none under alarm"
        );
        let g = net(&madrid(200, 5_000), &[]);
        let p = best_path(&g, &"ha".into(), &"hb".into(), 256).unwrap();
        assert_eq!(ids(&p), ["ha", "x", "hb"], "the ring lacks 256 bits");
    }

    #[test]
    fn direction_counts_and_a_link_one_end_reports_is_no_link() {
        // ha → r1 has pad, r1 → ha has none: a relay from ha may go, one to ha may not
        let mut by: BTreeMap<&str, Vec<LinkReport>> = BTreeMap::new();
        let rep = |peer: &str, send: u64, recv: u64| LinkReport {
            peer: peer.into(),
            send_bits: send,
            receive_bits: recv,
            key_rate_bps: 0.0,
            alarm: false,
            excess_noise: None,
        };
        by.entry("ha").or_default().push(rep("r1", 1000, 0));
        by.entry("r1").or_default().push(rep("ha", 0, 1000));
        by.entry("r1").or_default().push(rep("hb", 1000, 1000));
        by.entry("hb").or_default().push(rep("r1", 1000, 1000));
        by.entry("hb")
            .or_default()
            .push(rep("ghost", 1_000_000, 1_000_000));
        let mut db = LinkStateDb::new(Duration::from_secs(60));
        for (o, links) in by {
            db.offer(
                LinkStateAdvert {
                    origin: o.into(),
                    seq: 1,
                    links,
                },
                Instant::now(),
            )
            .unwrap();
        }
        let g = Graph::from_db(&db);
        assert!(best_path(&g, &"ha".into(), &"hb".into(), 256).is_ok());
        assert!(best_path(&g, &"hb".into(), &"ha".into(), 256).is_err());
        let e = best_path(&g, &"hb".into(), &"ghost".into(), 1).unwrap_err();
        assert!(matches!(e, RouteError::UnknownKme { .. }), "{e}");
        // the two ends' views differ while a relay is under way: the smaller counts
        let hop = g.hops().into_iter().find(|h| h.from.0 == "ha").unwrap();
        assert_eq!(hop.bits, 1000);
    }

    #[test]
    fn disjoint_paths_share_no_trusted_node() {
        let g = net(&madrid(10_000, 5_000), &[]);
        let paths = disjoint_paths(&g, &"ha".into(), &"hb".into(), 2, 256).unwrap();
        assert_eq!(ids(&paths[0]), ["ha", "x", "hb"]);
        assert_eq!(ids(&paths[1]), ["ha", "r1", "r2", "hb"]);
        let e = disjoint_paths(&g, &"ha".into(), &"hb".into(), 3, 256).unwrap_err();
        assert_eq!(
            e.to_string(),
            "only 2 node-disjoint paths from 'ha' to 'hb' with 256 bits of pad on every link and none under alarm, 3 wanted"
        );
        // two routes that meet at one KME are one disjoint path, not two
        let g = net(
            &[
                ("a", "m1", 1000),
                ("a", "m2", 1000),
                ("m1", "c", 1000),
                ("m2", "c", 1000),
                ("c", "b", 1000),
            ],
            &[],
        );
        let e = disjoint_paths(&g, &"a".into(), &"b".into(), 2, 1).unwrap_err();
        assert!(
            matches!(e, RouteError::TooFewDisjoint { found: 1, .. }),
            "{e}"
        );
    }

    #[test]
    fn disjoint_paths_reroute_around_a_greedy_first_choice() {
        // The shortest path a-c-d-b takes c and d, which would leave no second path;
        // the flow finds a-c-e-b and a-f-d-b instead.
        let g = net(
            &[
                ("a", "c", 1000),
                ("c", "d", 1000),
                ("d", "b", 1000),
                ("c", "e", 1000),
                ("e", "b", 1000),
                ("a", "f", 1000),
                ("f", "d", 1000),
            ],
            &[],
        );
        let paths = disjoint_paths(&g, &"a".into(), &"b".into(), 2, 1).unwrap();
        let mut got: Vec<Vec<&str>> = paths.iter().map(ids).collect();
        got.sort();
        assert_eq!(got, [vec!["a", "c", "e", "b"], vec!["a", "f", "d", "b"]]);
        let inner: Vec<&KmeId> = paths
            .iter()
            .flat_map(|p| &p.kmes[1..p.kmes.len() - 1])
            .collect();
        let mut dedup = inner.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), inner.len(), "no trusted node on two paths");
    }

    #[test]
    fn a_path_on_a_larger_mesh_is_simple_and_uses_only_reported_links() {
        // a 5x4 grid of 20 KMEs with varied pad
        let mut links = Vec::new();
        let name = |r: usize, c: usize| format!("k{r}{c}");
        let names: Vec<Vec<String>> = (0..5)
            .map(|r| (0..4).map(|c| name(r, c)).collect())
            .collect();
        for r in 0..5 {
            for c in 0..4 {
                let bits = 1000 + ((r * 7 + c * 13) % 11) as u64 * 500;
                if c + 1 < 4 {
                    links.push((names[r][c].as_str(), names[r][c + 1].as_str(), bits));
                }
                if r + 1 < 5 {
                    links.push((names[r][c].as_str(), names[r + 1][c].as_str(), bits + 250));
                }
            }
        }
        let g = net(&links, &[]);
        let p = best_path(&g, &"k00".into(), &"k43".into(), 256).unwrap();
        let mut seen = p.kmes.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), p.kmes.len(), "simple: {:?}", p.kmes);
        let hops = g.hops();
        let mut bottleneck = u64::MAX;
        for w in p.kmes.windows(2) {
            let h = hops
                .iter()
                .find(|h| h.from == w[0] && h.to == w[1])
                .expect("every hop is a link");
            bottleneck = bottleneck.min(h.bits);
        }
        assert_eq!(bottleneck, p.bottleneck_bits);
        // no path can carry more relays at its bottleneck: brute force over simple paths
        let best = brute_force_best(&g, "k00", "k43", 256);
        assert_eq!(p.bottleneck_bits / 256, best.0);
        assert_eq!(
            p.kmes.len() - 1,
            best.1,
            "and no shorter path carries as many"
        );
    }

    /// (most relays at the bottleneck, fewest hops among those) over every simple path.
    fn brute_force_best(g: &Graph, from: &str, to: &str, need: u64) -> (u64, usize) {
        fn go(
            g: &Graph,
            v: usize,
            t: usize,
            need: u64,
            on: &mut Vec<usize>,
            width: u64,
            best: &mut Option<(u64, usize)>,
        ) {
            if v == t {
                let cand = (width / need, on.len() - 1);
                let better = match *best {
                    None => true,
                    Some((r, h)) => cand.0 > r || (cand.0 == r && cand.1 < h),
                };
                if better {
                    *best = Some(cand);
                }
                return;
            }
            let next: Vec<(usize, u64)> = g.usable(v, need).collect();
            for (w, bits) in next {
                if !on.contains(&w) {
                    on.push(w);
                    go(g, w, t, need, on, width.min(bits), best);
                    on.pop();
                }
            }
        }
        let s = g.find(&from.into()).unwrap();
        let t = g.find(&to.into()).unwrap();
        let mut best = None;
        go(g, s, t, need, &mut vec![s], u64::MAX, &mut best);
        best.unwrap()
    }
}
