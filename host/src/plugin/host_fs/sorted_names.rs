//! A directory's names packed into one buffer: what a listing snapshot holds. Each name costs
//! its bytes and a 4-byte end offset, not a `String` of its own (24 bytes and an allocation),
//! so a snapshot of a million-entry directory takes about 12 MB instead of 56, and reading
//! one makes no million small allocations that would stay behind as fragmented heap.

use super::super::bindings::types::Error;

/// Names in the order they were read, as [`scan`](super) collects them.
#[derive(Default)]
pub struct NameList {
    text: String,
    /// Where each name ends in `text`; it starts where the one before ended.
    ends: Vec<u32>,
}

impl NameList {
    /// Appends a name; `io` once the names would pass 4 GiB together, which offsets of four
    /// bytes cannot address.
    pub fn push(&mut self, name: &str) -> Result<(), Error> {
        let end = u32::try_from(self.text.len() + name.len()).map_err(|_| Error::Io)?;
        self.text.push_str(name);
        self.ends.push(end);
        Ok(())
    }

    /// A list of `names`, for tests.
    #[cfg(test)]
    pub fn of(names: &[&str]) -> NameList {
        let mut list = NameList::default();
        for name in names {
            list.push(name).expect("names under 4 GiB");
        }
        list
    }

    fn name(&self, i: usize) -> &str {
        name_at(&self.text, &self.ends, i)
    }

    /// The same names in byte order.
    pub fn sorted(self) -> SortedNames {
        let mut order: Vec<u32> = (0..self.ends.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.name(a as usize).cmp(self.name(b as usize)));
        let mut sorted = NameList {
            text: String::with_capacity(self.text.len()),
            ends: Vec::with_capacity(self.ends.len()),
        };
        for i in order {
            let name = self.name(i as usize);
            sorted.text.push_str(name);
            sorted.ends.push(sorted.text.len() as u32);
        }
        SortedNames(sorted)
    }
}

/// Names in byte order, for binary search by a cursor name.
pub struct SortedNames(NameList);

impl SortedNames {
    pub fn len(&self) -> usize {
        self.0.ends.len()
    }

    /// The `i`th name; `i` must be below [`SortedNames::len`].
    pub fn get(&self, i: usize) -> &str {
        self.0.name(i)
    }

    /// How many names sort at or before `name`: the index of the first name after it.
    pub fn count_through(&self, name: &str) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if self.get(mid) <= name {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// The names from index `from` up to `to` (exclusive).
    pub fn range(&self, from: usize, to: usize) -> impl Iterator<Item = &str> {
        (from..to).map(|i| self.get(i))
    }
}

fn name_at<'a>(text: &'a str, ends: &[u32], i: usize) -> &'a str {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &text[start..ends[i] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back_sorted_by_bytes_and_found_by_binary_search() {
        let sorted = NameList::of(&["b", "", "ünï", "a", "ab", "B"]).sorted();
        let all: Vec<&str> = sorted.range(0, sorted.len()).collect();
        assert_eq!(all, ["", "B", "a", "ab", "b", "ünï"]);
        assert_eq!(sorted.count_through("a"), 3);
        assert_eq!(sorted.count_through("aa"), 3);
        assert_eq!(sorted.count_through("ab"), 4);
        assert_eq!(sorted.count_through("zzz"), 5);
        assert_eq!(sorted.count_through("ÿ"), 6);
        let empty = NameList::default().sorted();
        assert_eq!((empty.len(), empty.count_through("x")), (0, 0));
    }

    #[test]
    fn every_name_of_a_large_directory_is_kept_once() {
        let names: Vec<String> = (0..10_000).rev().map(|i| format!("f{i:05}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let sorted = NameList::of(&refs).sorted();
        assert_eq!(sorted.len(), 10_000);
        assert!((1..sorted.len()).all(|i| sorted.get(i - 1) < sorted.get(i)));
        assert_eq!(sorted.get(1234), "f01234");
    }
}
