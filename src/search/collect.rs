//! Collecting the issues of matching documents without collecting the documents.
//!
//! A query that matches every event (a word in every exception, `level:error`) matched a
//! million documents; `DocSetCollector` put each address in a hash set before the issue ids
//! were looked up one by one (~100 ms at 1M). [`IssueIds`] reads the `issue_id` fast field a
//! block of matching documents at a time and marks the issue in a bitmap (issue ids are small
//! integers): a few nanoseconds per document, and the answer is the ~1,000 issues.

use std::collections::HashSet;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

/// Issue ids (from the `issue_id` fast field) of every matching document.
pub struct IssueIds;

pub struct SegmentIssueIds {
    column: Column<u64>,
    bits: Bitmap,
    vals: Vec<Option<u64>>,
}

/// A growable bitmap of issue ids; ids beyond [`Bitmap::MAX_DENSE`] go to a hash set.
#[derive(Default)]
pub struct Bitmap {
    words: Vec<u64>,
    sparse: HashSet<u64>,
}

impl Bitmap {
    /// 16M ids: a 2 MB bitmap at most.
    const MAX_DENSE: u64 = 1 << 24;

    pub fn insert(&mut self, id: u64) {
        if id >= Self::MAX_DENSE {
            self.sparse.insert(id);
            return;
        }
        let w = (id / 64) as usize;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (id % 64);
    }

    fn merge(&mut self, other: Bitmap) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(other.words) {
            *a |= b;
        }
        self.sparse.extend(other.sparse);
    }

    pub fn into_set(self) -> HashSet<u64> {
        let mut out = self.sparse;
        for (w, word) in self.words.iter().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let b = bits.trailing_zeros() as u64;
                out.insert(w as u64 * 64 + b);
                bits &= bits - 1;
            }
        }
        out
    }
}

impl Collector for IssueIds {
    type Fruit = HashSet<u64>;
    type Child = SegmentIssueIds;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentIssueIds> {
        Ok(SegmentIssueIds {
            column: reader.fast_fields().u64("issue_id")?,
            bits: Bitmap::default(),
            vals: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Bitmap>) -> tantivy::Result<HashSet<u64>> {
        let mut all = Bitmap::default();
        for f in fruits {
            all.merge(f);
        }
        Ok(all.into_set())
    }
}

impl SegmentCollector for SegmentIssueIds {
    type Fruit = Bitmap;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(id) = self.column.first(doc) {
            self.bits.insert(id);
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        self.vals.clear();
        self.vals.resize(docs.len(), None);
        self.column.first_vals(docs, &mut self.vals);
        for id in self.vals.iter().flatten() {
            self.bits.insert(*id);
        }
    }

    fn harvest(self) -> Bitmap {
        self.bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_keeps_small_and_large_ids() {
        let mut a = Bitmap::default();
        for id in [0, 1, 63, 64, 1000, Bitmap::MAX_DENSE + 5] {
            a.insert(id);
        }
        let mut b = Bitmap::default();
        b.insert(1000);
        b.insert(70_000);
        a.merge(b);
        let mut got: Vec<u64> = a.into_set().into_iter().collect();
        got.sort();
        assert_eq!(got, [0, 1, 63, 64, 1000, 70_000, Bitmap::MAX_DENSE + 5]);
    }
}
