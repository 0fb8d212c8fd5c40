//! Where labels go, computed in pixels before anything is drawn, so two
//! labels never share a spot: lanes for labels along an axis, rows for
//! legend entries, and the y range a plot is scaled to.
//!
//! Hand-written because plotters places a text where it is told and has no
//! notion of collisions; these few rules are all the plots need.

/// The width in pixels of `text` in a sans-serif font of `font_px`: a
/// generous estimate (0.62 em a character), so estimated boxes that do not
/// touch leave the real ones apart too.
pub fn text_width(text: &str, font_px: u32) -> i32 {
    (text.chars().count() as f64 * f64::from(font_px) * 0.62).ceil() as i32
}

/// Lanes for labels that each span `[start, end)` pixels along one axis:
/// each label takes the first lane where it starts at least `gap` pixels
/// after the previous label of that lane ends. Labels are taken in order of
/// their start; the result is each label's lane, in the input's order.
pub fn lanes(spans: &[(i32, i32)], gap: i32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans[i].0);
    let mut lane_end: Vec<i32> = Vec::new();
    let mut out = vec![0; spans.len()];
    for i in order {
        let (start, end) = spans[i];
        let lane = match lane_end.iter().position(|&e| e + gap <= start) {
            Some(l) => l,
            None => {
                lane_end.push(i32::MIN);
                lane_end.len() - 1
            }
        };
        lane_end[lane] = end;
        out[i] = lane;
    }
    out
}

/// Positions (x, row) for boxes of the given widths laid left to right,
/// `gap` pixels apart, wrapping to a new row before `max_width`.
pub fn flow(widths: &[i32], max_width: i32, gap: i32) -> Vec<(i32, usize)> {
    let (mut x, mut row) = (0, 0);
    let mut out = Vec::with_capacity(widths.len());
    for &w in widths {
        if x > 0 && x + w > max_width {
            x = 0;
            row += 1;
        }
        out.push((x, row));
        x += w + gap;
    }
    out
}

/// The `q` quantile (0 to 1) of `values` (nearest rank); 0 if there are none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * (v.len() - 1) as f64).round() as usize;
    v[rank]
}

/// A round number at or above `x` (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8
/// times a power of ten), for the top of an axis: close enough above `x`
/// that the data fills most of the plot.
pub fn nice_ceiling(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&c| c >= x * 0.999_999)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_that_would_overlap_take_different_lanes() {
        // Two labels at the same x (the same moment in two rows), one
        // further on that fits after the first.
        let spans = [(100, 180), (100, 180), (190, 260), (120, 150)];
        let l = lanes(&spans, 4);
        assert_eq!(l, vec![0, 1, 0, 2]);
        // No two spans of one lane overlap.
        for a in 0..spans.len() {
            for b in a + 1..spans.len() {
                if l[a] == l[b] {
                    assert!(spans[a].1 <= spans[b].0 || spans[b].1 <= spans[a].0);
                }
            }
        }
    }

    #[test]
    fn legend_entries_wrap_before_the_edge() {
        assert_eq!(
            flow(&[300, 300, 300, 100], 700, 20),
            vec![(0, 0), (320, 0), (0, 1), (320, 1)]
        );
    }

    #[test]
    fn a_spike_does_not_set_the_scale() {
        let mut v = vec![400.0; 39];
        v.push(5000.0);
        assert_eq!(quantile(&v, 0.95), 400.0);
        assert_eq!(nice_ceiling(430.0), 500.0);
        assert_eq!(nice_ceiling(768.0), 800.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }
}
