//! What every backend does around its SQL when it files a document: each
//! item's date and LSH bands, the candidates the near-duplicate index
//! suggests, the call to [`filing::file`], and the rows that its decisions
//! add. The backend reads and writes; nothing here touches a database.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::Document;
use crate::dedup::{self, NearIndex};
use crate::filing::{self, Filing, Incoming, Known, MergeReason};

/// One document on its way into the store.
pub(super) struct Gathering<'a> {
    doc: &'a Document,
    /// Each item's filing date (unix seconds).
    pub dates: Vec<i64>,
    /// Each item's LSH band keys (none without a signature).
    pub bands: Vec<Vec<i64>>,
    suggested: Vec<Vec<i64>>,
    /// The change time of each stored item the document updates or
    /// renames (by position), once [`Gathering::place`] gave them one.
    changed: HashMap<usize, i64>,
}

/// What filing decided for a document, as writes.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Items the feed stores already (by position): rewritten if changed.
    pub updates: Vec<usize>,
    /// Items that rename a stored item (position, stored item id).
    pub renames: Vec<(usize, i64)>,
    /// New items, by position, and the stored story each joins (`None`: a new story).
    pub fresh: Vec<(usize, Option<(i64, MergeReason)>)>,
}

/// The rows a plan's new items add.
#[derive(Debug, Default)]
pub(super) struct Rows {
    /// New stories: id, stored signature, date, position of the item that starts it.
    pub stories: Vec<(i64, Option<Vec<u8>>, i64, usize)>,
    /// Stored stories joined, with the earliest date of the items joining.
    /// A join keeps the story's `updated` instant (another outlet carrying
    /// a story is no change to show readers again); when it moves the
    /// story's date earlier, the backend keeps the old date as the change
    /// time so that `updated` never goes back.
    pub merged: Vec<(i64, i64)>,
    /// New items: position in the document, item id, story id, why.
    pub items: Vec<(usize, i64, i64, MergeReason)>,
    /// Their tags: item id, tag.
    pub tags: Vec<(i64, String)>,
}

impl<'a> Gathering<'a> {
    /// Dates and bands of the document's items.
    pub fn new(doc: &'a Document) -> Gathering<'a> {
        let dates = doc
            .items
            .iter()
            .map(|p| filing::item_date(p.item.published, p.item.updated, doc.now).timestamp())
            .collect();
        let bands = doc
            .items
            .iter()
            .map(|p| {
                p.item
                    .signature
                    .as_deref()
                    .map(dedup::bands)
                    .unwrap_or_default()
            })
            .collect();
        Gathering {
            doc,
            dates,
            bands,
            suggested: Vec::new(),
            changed: HashMap::new(),
        }
    }

    /// The time ranges whose stories the backend must give the index
    /// ([`NearIndex::filler`]) before [`Gathering::suggest`].
    pub fn missing_slabs(&self, near: &NearIndex) -> Vec<(i64, i64)> {
        let needed = self
            .dates
            .iter()
            .zip(&self.bands)
            .filter(|(_, b)| !b.is_empty())
            .map(|(d, _)| *d);
        near.missing(needed, self.doc.policy.window_secs)
    }

    /// Asks the index for each item's near-duplicate candidates; returns
    /// them all, once each, for the backend to read.
    pub fn suggest(&mut self, near: &mut NearIndex) -> Vec<i64> {
        let mut buf = Vec::new();
        self.suggested = self
            .dates
            .iter()
            .zip(&self.bands)
            .map(|(date, b)| {
                if b.is_empty() {
                    return Vec::new();
                }
                near.candidates(*date, self.doc.policy.window_secs, b, &mut buf);
                buf.clone()
            })
            .collect();
        let mut all: Vec<i64> = self.suggested.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Files the document against what the store holds.
    pub fn file(&self, known: &Known) -> Plan {
        let items = &self.doc.items;
        let incoming: Vec<Incoming> = items
            .iter()
            .enumerate()
            .map(|(i, p)| Incoming {
                key: &p.item.key,
                title: &p.item.title,
                canonical_link: p.item.canonical_link.as_deref(),
                signature: p.item.signature.as_deref(),
                date: DateTime::<Utc>::from_timestamp(self.dates[i], 0).unwrap_or(self.doc.now),
                near: self.suggested.get(i).map_or(&[][..], Vec::as_slice),
            })
            .collect();
        let listed: HashSet<&str> = self
            .doc
            .listed
            .iter()
            .map(String::as_str)
            .chain(items.iter().map(|p| p.item.key.as_str()))
            .collect();
        let mut plan = Plan::default();
        let filings = filing::file(
            self.doc.feed_id,
            &incoming,
            &listed,
            known,
            &self.doc.policy,
        );
        for (i, f) in filings.into_iter().enumerate() {
            match f {
                Filing::Repeated | Filing::Tombstoned => {}
                Filing::Update => plan.updates.push(i),
                Filing::Rename { item_id } => plan.renames.push((i, item_id)),
                Filing::Join { story_id, reason } => plan.fresh.push((i, Some((story_id, reason)))),
                Filing::New => plan.fresh.push((i, None)),
            }
        }
        plan
    }

    /// Whether the item at `at` has no date of its own.
    fn undated(&self, at: usize) -> bool {
        let item = &self.doc.items[at].item;
        item.published.is_none() && item.updated.is_none()
    }

    /// How many instants the plan needs (see [`filing::InstantSearch`]):
    /// one per undated item that starts a story, and one per changed item.
    pub fn instants_needed(&self, plan: &Plan) -> usize {
        let undated = plan
            .fresh
            .iter()
            .filter(|(at, joins)| joins.is_none() && self.undated(*at))
            .count();
        undated + plan.updates.len() + plan.renames.len()
    }

    /// Gives the plan its instants (latest first, as many as
    /// [`Gathering::instants_needed`]): the latest to the undated items
    /// that start stories, in document order (a feed lists its newest
    /// first), then the change times of updated items. Dated items keep
    /// their own dates; an undated item joining a stored story takes the
    /// fetch time (it leaves the story's date alone).
    pub fn place(&mut self, plan: &Plan, instants: &[i64]) {
        let mut next = instants.iter().copied();
        let fallback = self.doc.now.timestamp();
        let mut take = || next.next().unwrap_or(fallback);
        for (at, joins) in &plan.fresh {
            if self.undated(*at) {
                self.dates[*at] = if joins.is_none() { take() } else { fallback };
            }
        }
        for at in plan
            .updates
            .iter()
            .chain(plan.renames.iter().map(|(at, _)| at))
        {
            self.changed.insert(*at, take());
        }
    }

    /// The change time of the stored item the document updates at `at`:
    /// its placed instant, else the fetch time.
    pub fn changed_at(&self, at: usize) -> i64 {
        self.changed
            .get(&at)
            .copied()
            .unwrap_or_else(|| self.doc.now.timestamp())
    }

    /// The rows the plan's new items add, numbered from the next free story
    /// and item ids.
    pub fn rows(&self, plan: &Plan, next_story: i64, next_item: i64) -> Rows {
        let mut rows = Rows::default();
        let (mut story, mut item) = (next_story, next_item);
        let mut merged: HashMap<i64, i64> = HashMap::new();
        for (at, joins) in &plan.fresh {
            let (p, date) = (&self.doc.items[*at], self.dates[*at]);
            let (story_id, reason) = match joins {
                Some((s, reason)) => {
                    let d = merged.entry(*s).or_insert(date);
                    *d = (*d).min(date);
                    (*s, reason.clone())
                }
                None => {
                    story += 1;
                    let sig = p.item.signature.as_deref().map(dedup::signature_to_bytes);
                    rows.stories.push((story - 1, sig, date, *at));
                    (story - 1, MergeReason::First)
                }
            };
            rows.tags
                .extend(p.item.tags.iter().map(|t| (item, t.clone())));
            rows.items.push((*at, item, story_id, reason));
            item += 1;
        }
        rows.merged = merged.into_iter().collect();
        rows.merged.sort_unstable();
        rows
    }

    /// Once the rows are written: the new stories join the index, and a
    /// stored story an earlier item moved to another slab is found there too.
    pub fn index_written(&self, near: &mut NearIndex, rows: &Rows, known: &Known) {
        for (story_id, _, date, at) in &rows.stories {
            if !self.bands[*at].is_empty() {
                near.insert(*story_id, *date, &self.bands[*at]);
            }
        }
        for (story_id, date) in &rows.merged {
            if let Some(s) = known.stories.get(story_id)
                && *date < s.date.timestamp()
            {
                near.insert(*story_id, *date, &dedup::bands(&s.signature));
            }
        }
        if let Some((last, ..)) = rows.stories.last() {
            near.seen_up_to = near.seen_up_to.max(*last);
        }
    }
}
