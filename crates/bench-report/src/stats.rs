//! The numbers: percentiles, medians, ratios and per-container averages, as `bench/run`
//! computed them in awk before (interpolated percentiles, ratios only of numbers that are
//! there).

/// Percentile `p` (0..=1) of `values`, linearly interpolated between the two closest ranks
/// (rank `h = (n - 1) p`, counted from 0); `None` for no values.
pub fn percentile(values: &[u64], p: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * p.clamp(0.0, 1.0);
    // h is within 0..=last, so the cast keeps it.
    let lo = (h.floor() as usize).min(last);
    let mut v = sorted[lo] as f64;
    if lo < last {
        v += (h - lo as f64) * (sorted[lo + 1] as f64 - v);
    }
    Some(v)
}

/// The median: the interpolated 50th percentile.
pub fn median(values: &[u64]) -> Option<f64> {
    percentile(values, 0.5)
}

/// Microseconds to milliseconds.
pub fn ms(us: Option<f64>) -> Option<f64> {
    us.map(|v| v / 1000.0)
}

/// `a / b`, when both are there and `b` is not 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// `a - b`, when both are there.
pub fn minus(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

/// `n` per one of `count` (requests per container), when there are any.
pub fn per(n: Option<u64>, count: u64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    Some(n? as f64 / count as f64)
}

/// How many times smaller `ours` is than `theirs` (network overheads): an overhead within
/// the noise (<= 0) counts as none, infinitely smaller.
pub fn times_smaller(theirs: Option<f64>, ours: Option<f64>) -> Option<f64> {
    let (theirs, ours) = (theirs?, ours?);
    if ours <= 0.0 {
        return Some(f64::INFINITY);
    }
    Some(theirs / ours)
}

/// How much a count grew from `before` to `after`: 1 when both are 0 (no growth),
/// infinite when it grew from 0.
pub fn growth(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    let (before, after) = (before?, after?);
    if before == 0.0 {
        return Some(if after == 0.0 { 1.0 } else { f64::INFINITY });
    }
    Some(after / before)
}

/// The largest value.
pub fn max(values: &[u64]) -> Option<u64> {
    values.iter().copied().max()
}

/// `true` if `a <= b`, `None` when `a` is missing.
pub fn at_most(a: Option<f64>, b: f64) -> Option<bool> {
    a.map(|a| a <= b)
}

/// Both targets met, one failed, or unknown when either is unknown and none failed.
pub fn all(results: &[Option<bool>]) -> Option<bool> {
    if results.contains(&Some(false)) {
        return Some(false);
    }
    if results.iter().any(Option::is_none) {
        return None;
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_percentile_as_bench_run_had_it() {
        // awk: h = (n - 1) p + 1 (1-based), v = x[lo] + (h - lo) (x[lo + 1] - x[lo]).
        let v = [400, 100, 300, 200];
        assert_eq!(percentile(&v, 0.5), Some(250.0));
        assert_eq!(percentile(&v, 0.9), Some(370.0));
        assert_eq!(percentile(&v, 0.0), Some(100.0));
        assert_eq!(percentile(&v, 1.0), Some(400.0));
        assert_eq!(percentile(&[7], 0.9), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
        // 10 values, p90: h = 8.1 (0-based), between the 9th and 10th.
        let ten: Vec<u64> = (1..=10).map(|x| x * 1000).collect();
        let p90 = percentile(&ten, 0.9).unwrap();
        assert!((p90 - 9100.0).abs() < 1e-6);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3, 1, 2]), Some(2.0));
        assert_eq!(median(&[1, 2, 3, 10]), Some(2.5));
        assert_eq!(ms(median(&[359_600])), Some(359.6));
    }

    #[test]
    fn ratios_only_of_what_is_there() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(minus(Some(3.0), Some(2.5)), Some(0.5));
        assert_eq!(minus(Some(3.0), None), None);
        assert_eq!(per(Some(48), 2), Some(24.0));
        assert_eq!(per(Some(1), 0), None);
        assert_eq!(times_smaller(Some(1350.0), Some(135.0)), Some(10.0));
        assert_eq!(times_smaller(Some(1350.0), Some(-3.0)), Some(f64::INFINITY));
    }

    #[test]
    fn growth_from_zero() {
        assert_eq!(growth(Some(0.0), Some(0.0)), Some(1.0));
        assert_eq!(growth(Some(0.0), Some(0.5)), Some(f64::INFINITY));
        assert_eq!(growth(Some(2.0), Some(2.4)), Some(1.2));
        assert_eq!(growth(None, Some(1.0)), None);
    }

    #[test]
    fn targets_combined() {
        assert_eq!(all(&[Some(true), Some(true)]), Some(true));
        assert_eq!(all(&[Some(true), None]), None);
        assert_eq!(all(&[None, Some(false)]), Some(false));
        assert_eq!(at_most(Some(1.3), 1.3), Some(true));
        assert_eq!(at_most(None, 1.3), None);
    }
}
