//! Moving a window's items into a sorted order found on small entries.

/// Moves `items` so that position `k` holds the item that was at `from[k]` (a
/// permutation of the positions), in place: a window's items can be many, and
/// each is a struct of several words, so sorting them, or copying them into a
/// second buffer, costs more than sorting small entries and moving each item
/// once. Follows each cycle of the permutation, marking a position done by
/// pointing it at itself.
pub(crate) fn permute<T>(items: &mut [T], mut from: Vec<u32>) {
    debug_assert_eq!(items.len(), from.len());
    for start in 0..from.len().min(items.len()) {
        let mut at = start;
        while from[at] as usize != start {
            let src = from[at] as usize;
            if src == at || src >= items.len() {
                break;
            }
            items.swap(at, src);
            from[at] = at as u32;
            at = src;
        }
        from[at] = at as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::permute;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn moves_each_item_where_the_order_says(
            order in (0usize..64).prop_flat_map(|n| Just((0..n as u32).collect::<Vec<_>>()).prop_shuffle()),
        ) {
            let mut items: Vec<u32> = (0..order.len() as u32).map(|i| i * 10).collect();
            permute(&mut items, order.clone());
            let want: Vec<u32> = order.iter().map(|&i| i * 10).collect();
            prop_assert_eq!(items, want);
        }
    }
}
