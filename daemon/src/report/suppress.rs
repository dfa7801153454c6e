//! Small numbers kept from governors (the DfE's convention for published statistics): a count
//! from 1 to 5 is shown as "fewer than 5", and a column of counts that adds up towards a total
//! the report shows hides more of its counts, smallest first, until at least two are hidden and
//! the hidden ones add up to 8 or more (and are not all fives), so no hidden count can be worked
//! out by subtracting the others from the total: each could be one of several numbers. Those extra counts read "withheld". Zero is shown: nothing is
//! learnt about anyone from it.
//!
//! Pure: counts in, what to show out.

/// The largest count hidden for being small.
pub const SMALL: i64 = 5;
/// What a small count reads.
pub const FEWER_THAN_5: &str = "fewer than 5";
/// What a count hidden to protect a small one reads.
pub const WITHHELD: &str = "withheld";
/// Hidden counts must add up to at least this: then a hidden count from 1 to 5 beside one of 6
/// or more, or beside another small one, could be one of several numbers.
const HIDDEN_SUM: i64 = 8;

/// Whether `n` alone must be hidden.
pub fn is_small(n: i64) -> bool {
    (1..=SMALL).contains(&n)
}

/// What a lone count (a total, open actions) shows: `None` when hidden.
pub fn lone(n: i64) -> Option<i64> {
    (!is_small(n)).then_some(n)
}

/// One column of counts that adds up towards a shown total: `None` where a count is hidden.
pub fn column(counts: &[i64]) -> Vec<Option<i64>> {
    let mut shown: Vec<Option<i64>> = counts.iter().map(|&n| lone(n)).collect();
    loop {
        let hidden: Vec<i64> = counts.iter().zip(&shown).filter(|(_, s)| s.is_none()).map(|(n, _)| *n).collect();
        let sum: i64 = hidden.iter().sum();
        // Small counts adding up to five times their number are all fives.
        let all_fives = hidden.iter().all(|n| is_small(*n)) && sum == SMALL * hidden.len() as i64;
        if hidden.is_empty() || (hidden.len() >= 2 && sum >= HIDDEN_SUM && !all_fives) {
            break;
        }
        let next = counts.iter().enumerate().filter(|(i, n)| **n > 0 && shown[*i].is_some()).min_by_key(|(_, n)| **n).map(|(i, _)| i);
        match next {
            Some(i) => shown[i] = None,
            None => break,
        }
    }
    shown
}

/// The text of a count as a governor sees it.
pub fn text(n: i64, shown: Option<i64>) -> String {
    match shown {
        Some(v) => v.to_string(),
        None if is_small(n) => FEWER_THAN_5.to_string(),
        None => WITHHELD.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_hidden_and_cannot_be_subtracted_back() {
        // Nothing small: everything shown.
        assert_eq!(column(&[10, 0, 7]), vec![Some(10), Some(0), Some(7)]);
        // One small count: the next smallest is hidden too, until the hidden add up to 8.
        assert_eq!(column(&[3, 6, 20, 0]), vec![None, None, Some(20), Some(0)]);
        assert_eq!(column(&[1, 8, 9, 30]), vec![None, None, Some(9), Some(30)]);
        // Two small counts adding up to less than 8: a larger one goes as well.
        assert_eq!(column(&[1, 1, 40, 7]), vec![None, None, Some(40), None]);
        // Hidden already adding up to 8 or more: nothing else is hidden.
        assert_eq!(column(&[4, 0, 5, 9]), vec![None, Some(0), None, Some(9)]);
        // Unless they are all fives, which the total would give away.
        assert_eq!(column(&[5, 0, 5, 9]), vec![None, Some(0), None, None]);
        // A column with nothing left to hide stops.
        assert_eq!(column(&[2]), vec![None]);
        assert_eq!(text(3, None), "fewer than 5");
        assert_eq!(text(6, None), "withheld");
        assert_eq!(text(0, Some(0)), "0");
        assert_eq!(lone(5), None);
        assert_eq!(lone(6), Some(6));
    }
}
