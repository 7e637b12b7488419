//! Merging runs that are each already in order (one per shard) into one ordered list, without
//! allocating: the canonical orders of phase inputs are merges of per-shard outputs.

/// Moves the items of `runs`, each sorted by `key`, into `out` in `key` order; among equal keys
/// the earlier run's items come first. Leaves every run empty with its capacity.
pub(crate) fn merge_sorted_runs<T, K: Ord>(
    runs: &mut [Vec<T>],
    out: &mut Vec<T>,
    key: impl Fn(&T) -> K,
) {
    out.clear();
    let mut total = 0;
    for run in runs.iter_mut() {
        debug_assert!(run.windows(2).all(|w| key(&w[0]) <= key(&w[1])));
        // Reversed, so that the next item of each run is its last, popped in O(1).
        run.reverse();
        total += run.len();
    }
    out.reserve(total);
    // Each step moves one item: bounded by the total.
    for _ in 0..total {
        let mut best: Option<usize> = None;
        for (i, run) in runs.iter().enumerate() {
            let Some(item) = run.last() else { continue };
            let better = match best {
                None => true,
                Some(b) => runs[b].last().is_none_or(|head| key(item) < key(head)),
            };
            if better {
                best = Some(i);
            }
        }
        if let Some(item) = best.and_then(|b| runs[b].pop()) {
            out.push(item);
        }
    }
    debug_assert!(runs.iter().all(Vec::is_empty));
    debug_assert_eq!(out.len(), total);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_in_key_order_earlier_run_first_on_ties() {
        let mut runs = vec![
            vec![(1, 'a'), (4, 'a'), (4, 'b')],
            vec![],
            vec![(0, 'c'), (4, 'c'), (9, 'c')],
        ];
        let mut out = Vec::new();
        merge_sorted_runs(&mut runs, &mut out, |x| x.0);
        assert_eq!(
            out,
            vec![(0, 'c'), (1, 'a'), (4, 'a'), (4, 'b'), (4, 'c'), (9, 'c')]
        );
        assert!(runs.iter().all(Vec::is_empty));
    }
}
