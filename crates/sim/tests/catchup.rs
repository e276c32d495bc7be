//! Catch-up in the simulator: nodes taken offline while messages are sent
//! come back with their histories and recover every message, once.
//! Seeded; a failing seed is printed so it can be replayed with
//! `gossipnet sim catchup --seed S`.

use gossipnet_sim::experiments;
use gossipnet_sim::SimConfig;

#[test]
fn returning_nodes_recover_every_missed_message_exactly_once() {
    // Taking a fifth of the nodes away at once can leave the live overlay
    // in pieces: the flash-crowd defect of docs/SIMULATION.md ("Known
    // issue"), which HyParView's repair does not heal without seeds. Then
    // live nodes miss messages too, and catch-up cannot be judged by
    // them; such a seed is skipped and named. Of seeds 1-16, seven split
    // (before the per-origin trees as after them).
    let mut judged = Vec::new();
    for seed in 1u64..=12 {
        let config = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let r = experiments::catchup(config, 300, 0.2, 50, &mut |_| {});
        assert_eq!(r.violations.duplicate_deliveries, 0, "seed {seed}");
        if r.live_missed > 0 {
            eprintln!(
                "seed {seed}: the live overlay split ({} deliveries missed)",
                r.live_missed
            );
            continue;
        }
        assert_eq!(r.missed, 60 * 50, "seed {seed}");
        assert_eq!(r.recovered, r.missed, "seed {seed}: {r:?}");
        judged.push(seed);
        if judged.len() == 3 {
            return;
        }
    }
    panic!("only seeds {judged:?} of 1-12 kept the live overlay whole");
}
