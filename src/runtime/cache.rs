//! A small least-recently-used map: the recorded plans of a network or trainer, one per input shape, kept
//! to a bounded number so that calls on frames of many sizes do not grow memory without limit.

/// At most `capacity` entries; inserting past it drops the least recently used. Linear search: meant for
/// a handful of entries (each of which owns megabytes of GPU buffers).
#[derive(Debug)]
pub struct LruCache<K, V> {
    capacity: usize,
    /// Least recently used first.
    entries: Vec<(K, V)>,
}

impl<K: PartialEq, V> LruCache<K, V> {
    /// A cache holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        LruCache { capacity: capacity.max(1), entries: Vec::new() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the bound (at least 1), dropping the least recently used entries beyond it.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        let excess = self.entries.len().saturating_sub(self.capacity);
        self.entries.drain(..excess);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// The entry for `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<&mut V> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(i);
        self.entries.push(entry);
        self.entries.last_mut().map(|(_, v)| v)
    }

    /// Inserts (or replaces) the entry for `key` as the most recently used, dropping the least recently
    /// used one if the cache is full.
    pub fn insert(&mut self, key: K, value: V) -> &mut V {
        if let Some(i) = self.entries.iter().position(|(k, _)| *k == key) {
            self.entries.remove(i);
        } else if self.entries.len() >= self.capacity {
            self.entries.remove(0);
        }
        self.entries.push((key, value));
        let last = self.entries.len() - 1;
        &mut self.entries[last].1
    }

    /// The entry for `key` (most recently used now), made by `make` if absent.
    pub fn get_or_try_insert_with<E>(&mut self, key: K, make: impl FnOnce() -> Result<V, E>) -> Result<&mut V, E> {
        if let Some(i) = self.entries.iter().position(|(k, _)| *k == key) {
            let entry = self.entries.remove(i);
            self.entries.push(entry);
        } else {
            let value = make()?;
            if self.entries.len() >= self.capacity {
                self.entries.remove(0);
            }
            self.entries.push((key, value));
        }
        let last = self.entries.len() - 1;
        Ok(&mut self.entries[last].1)
    }

    /// Keys from the least to the most recently used.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::LruCache;

    #[test]
    fn keeps_the_most_recently_used_within_capacity() {
        let mut c = LruCache::new(2);
        c.insert(1, "a");
        c.insert(2, "b");
        assert_eq!(c.get(&1).copied(), Some("a")); // 1 is now the most recent
        c.insert(3, "c"); // drops 2
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert!(!c.contains(&2));
        let made: Result<_, ()> = c.get_or_try_insert_with(4, || Ok("d"));
        assert_eq!(made.copied(), Ok("d")); // drops 1
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![3, 4]);
        // A hit does not call `make`, and moves the entry to the front.
        let hit: Result<_, ()> = c.get_or_try_insert_with(3, || panic!("3 is cached"));
        assert_eq!(hit.copied(), Ok("c"));
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![4, 3]);
        // A failed `make` leaves the cache as it was.
        assert_eq!(c.get_or_try_insert_with(5, || Err("no")).map(|v| *v), Err("no"));
        assert_eq!(c.len(), 2);
        c.set_capacity(1);
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![3]);
        c.insert(3, "c2");
        assert_eq!((c.len(), c.get(&3).copied()), (1, Some("c2")));
        for i in 0..100 {
            c.insert(i, "x");
            assert!(c.len() <= c.capacity());
        }
        assert_eq!(LruCache::<u8, u8>::new(0).capacity(), 1);
    }
}
