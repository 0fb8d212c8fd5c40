//! Dividing the cluster's limit among its members, max-min fair by demand
//! (water-filling).
//!
//! Hand-written: a dozen lines of integer arithmetic that must keep two
//! promises no crate states for us, that every live member gets at least 1
//! call and that the shares never sum past the limit (unless the members
//! outnumber it).

/// Shares of `limit` for members wanting `demands` calls: everyone gets at
/// least 1; the rest is filled level by level, so a member wanting little
/// gets all it wants and the others split what is left evenly. What nobody
/// wants is spread evenly too, so a member can grow into it before the next
/// grant. The shares sum to `max(limit, demands.len())`.
pub(crate) fn fair_shares(limit: u64, demands: &[u64]) -> Vec<u64> {
    let n = demands.len() as u64;
    let mut shares = vec![1u64; demands.len()];
    let mut left = limit.saturating_sub(n);
    // Fill the unsatisfied members level by level.
    while left > 0 {
        let open: Vec<usize> = (0..shares.len())
            .filter(|&i| shares[i] < demands[i])
            .collect();
        if open.is_empty() {
            break;
        }
        let each = left / open.len() as u64;
        if each == 0 {
            // Fewer calls than open members: one each to the smallest.
            let mut by_share = open;
            by_share.sort_by_key(|&i| (shares[i], i));
            for &i in by_share.iter().take(left as usize) {
                shares[i] += 1;
            }
            return shares;
        }
        for i in open {
            let add = each.min(demands[i] - shares[i]);
            shares[i] += add;
            left -= add;
        }
    }
    // Everyone has what it wants: spread the rest evenly.
    if left > 0 && n > 0 {
        let (each, extra) = (left / n, left % n);
        for (i, s) in shares.iter_mut().enumerate() {
            *s += each + u64::from((i as u64) < extra);
        }
    }
    shares
}

/// What to grant members holding `holding` on their way to `targets`,
/// without the calls held passing `limit`: a share shrinks at once, and
/// grows only into calls nobody holds (shared out level by level among the
/// members growing). Members take a grant when they read it, so granting a
/// growth before the others have shrunk would let the cluster hold more
/// than its limit in between.
pub(crate) fn phased(limit: u64, targets: &[u64], holding: &[u64]) -> Vec<u64> {
    let held = holding.iter().fold(0u64, |a, &h| a.saturating_add(h));
    let wants: Vec<u64> = targets
        .iter()
        .zip(holding)
        .map(|(&t, &h)| t.saturating_sub(h))
        .collect();
    let extra = fill(limit.saturating_sub(held), &wants);
    targets
        .iter()
        .zip(holding)
        .zip(extra)
        .map(|((&t, &h), e)| if t <= h { t } else { h + e })
        .collect()
}

/// `room` shared max-min fair among members wanting `wants` more.
fn fill(room: u64, wants: &[u64]) -> Vec<u64> {
    let mut got = vec![0u64; wants.len()];
    let mut left = room;
    while left > 0 {
        let open: Vec<usize> = (0..got.len()).filter(|&i| got[i] < wants[i]).collect();
        if open.is_empty() {
            break;
        }
        let each = left / open.len() as u64;
        if each == 0 {
            let mut by_got = open;
            by_got.sort_by_key(|&i| (got[i], i));
            for &i in by_got.iter().take(left as usize) {
                got[i] += 1;
            }
            break;
        }
        for i in open {
            let add = each.min(wants[i] - got[i]);
            got[i] += add;
            left -= add;
        }
    }
    got
}

#[cfg(test)]
mod tests {
    use super::{fair_shares, phased};

    #[test]
    fn shrinking_comes_before_growing() {
        // A newcomer holding 1 beside two holding 10 of 20: the two shrink
        // now, the newcomer grows once they have.
        let targets = fair_shares(20, &[u64::MAX; 3]);
        assert_eq!(phased(20, &targets, &[10, 10, 1]), vec![7, 7, 1]);
        assert_eq!(phased(20, &targets, &[7, 7, 1]), vec![7, 7, 6]);
        // A limit cut applies at once; nobody grows past it.
        assert_eq!(phased(10, &[5, 5], &[10, 10]), vec![5, 5]);
        // Room is shared fairly among the growing.
        assert_eq!(phased(20, &[10, 10], &[2, 2]), vec![10, 10]);
        assert_eq!(phased(20, &[10, 10, 1], &[2, 2, 12]), vec![4, 4, 1]);
    }

    #[test]
    fn small_demand_is_met_and_the_rest_split() {
        assert_eq!(fair_shares(20, &[3, u64::MAX, u64::MAX]), vec![3, 9, 8]);
        assert_eq!(fair_shares(20, &[3, u64::MAX]), vec![3, 17]);
    }

    #[test]
    fn equal_demands_split_evenly() {
        let s = fair_shares(10, &[u64::MAX; 3]);
        assert_eq!(s.iter().sum::<u64>(), 10);
        assert!(s.iter().all(|&x| x == 3 || x == 4), "{s:?}");
    }

    #[test]
    fn unwanted_calls_are_spread() {
        assert_eq!(fair_shares(10, &[1, 1]), vec![5, 5]);
    }

    #[test]
    fn everyone_gets_one_even_past_the_limit() {
        assert_eq!(fair_shares(2, &[5, 5, 5]), vec![1, 1, 1]);
        assert_eq!(fair_shares(0, &[]), Vec::<u64>::new());
    }

    #[test]
    fn never_past_the_limit() {
        for limit in 0..40u64 {
            for demands in [vec![1, 7, 30], vec![u64::MAX, 2], vec![4, 4, 4, 4, 4]] {
                let s = fair_shares(limit, &demands);
                let sum: u64 = s.iter().sum();
                assert!(
                    sum <= limit.max(demands.len() as u64),
                    "{limit} {demands:?} {s:?}"
                );
                assert!(s.iter().all(|&x| x >= 1));
            }
        }
    }
}
