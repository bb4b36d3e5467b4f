//! Which story an incoming item joins, decided from the candidates the store
//! found. Plain code: no SQL, no I/O, no clock (the caller passes `now`).
//!
//! The store gathers, for one feed's document, what bears on it ([`Known`]):
//! the feed's stored keys and tombstones, the stored items sharing a
//! canonical link with an incoming item, and the near-duplicate candidate
//! stories its band index suggests. [`file`] turns that into one [`Filing`]
//! per item, which the store applies in the same transaction:
//!
//! - a key the feed already stores is updated in place (or left alone when
//!   its content did not change), a key the retention pruned is not stored
//!   again;
//! - a new key whose canonical link and text match a stored item of the same
//!   feed that the document no longer lists is that item, renamed (a CMS
//!   migration changed its guid);
//! - a new item joins the story of another feed's item with the same
//!   canonical link, else the most similar story of other feeds dated within
//!   the window of the item, else it starts a story. Two items of one feed
//!   are never one story by similarity.
//!
//! [`rank_sources`] decides, when a story is read, which of its items is the
//! primary (highest feed priority, then earliest) and how the others relate
//! to it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::dedup::{self, Signature};

/// The rules of filing, from `[dedup]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Near duplicates are sought among stories dated this close to the item (seconds).
    pub window_secs: i64,
    /// Similarity at or above which an item joins a story.
    pub threshold: f64,
}

/// Why an item belongs to its story, as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeReason {
    /// It started the story.
    First,
    /// Same canonical link as an item of the story.
    SameLink,
    /// Near-identical text, with its similarity.
    NearDuplicate(f64),
}

impl MergeReason {
    /// Stored form: `first`, `same link`, `near duplicate`.
    pub fn kind(&self) -> &'static str {
        match self {
            MergeReason::First => "first",
            MergeReason::SameLink => "same link",
            MergeReason::NearDuplicate(_) => "near duplicate",
        }
    }

    /// The similarity score, for near duplicates.
    pub fn score(&self) -> Option<f64> {
        match self {
            MergeReason::NearDuplicate(s) => Some(*s),
            _ => None,
        }
    }

    /// Reads the stored form back.
    pub fn from_stored(kind: Option<&str>, score: Option<f64>) -> MergeReason {
        match kind {
            Some("same link") => MergeReason::SameLink,
            Some("near duplicate") => MergeReason::NearDuplicate(score.unwrap_or(0.0)),
            _ => MergeReason::First,
        }
    }
}

/// The date an item is filed under: published, else updated, else the time
/// it was first seen.
pub fn item_date(
    published: Option<DateTime<Utc>>,
    updated: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    published.or(updated).unwrap_or(now)
}

/// How far back (in seconds, `now` included) to read taken instants next,
/// after [`InstantSearch::place`] found `span` seconds holding `taken` of them too
/// short for `n`: strictly more than `span`, so the search ends.
pub fn wider_span(n: usize, taken: usize) -> i64 {
    (n + taken) as i64
}

/// The search for a document's instants: the latest seconds at or before
/// its fetch time that no stored story holds as its date or change time,
/// latest first (given to its undated new stories, in document order, and
/// its changed ones, so that no two published entries share an `updated`
/// instant); one read of taken instants after another, each reaching
/// further back. A
/// process remembers the block of seconds its earlier documents took (from
/// the lowest instant it handed out up to that fetch time: every second in
/// it is taken or passed over) and the search treats the block as taken
/// without reading it again: without that, a burst of changes made every
/// document read every instant the burst had taken before it.
#[derive(Debug, Clone, Copy)]
pub struct InstantSearch {
    now: i64,
    need: usize,
    /// Seconds outside `skip` the next read covers, `now` included.
    span: i64,
    skip: Option<(i64, i64)>,
}

impl InstantSearch {
    /// A search for `need` instants at or before `now`, passing over the
    /// block `skip` (ignored when it is not below `now`: the clock went back).
    pub fn new(now: i64, need: usize, skip: Option<(i64, i64)>) -> InstantSearch {
        InstantSearch {
            now,
            need,
            span: need as i64,
            skip: skip.filter(|(lo, hi)| lo <= hi && *hi <= now),
        }
    }

    /// The lowest second the next read covers.
    fn floor(&self) -> i64 {
        let floor = self.now - self.span + 1;
        match self.skip {
            Some((lo, hi)) if floor <= hi => floor - (hi - lo + 1),
            _ => floor,
        }
    }

    /// The two ranges of seconds (`[from, to]`, empty when `from > to`)
    /// whose stored instants the backend must read next.
    pub fn ranges(&self) -> [(i64, i64); 2] {
        let floor = self.floor();
        match self.skip {
            Some((lo, hi)) if floor <= hi => [(hi + 1, self.now), (floor, lo - 1)],
            _ => [(floor, self.now), (1, 0)],
        }
    }

    /// Given the stored instants of [`InstantSearch::ranges`]: the
    /// instants, latest first; `None` when the read was too short (the
    /// next [`InstantSearch::ranges`] reach further back).
    pub fn place(&mut self, taken: &HashSet<i64>) -> Option<Vec<i64>> {
        let floor = self.floor();
        let mut free = Vec::with_capacity(self.need);
        let mut t = self.now;
        while free.len() < self.need {
            if t < floor {
                self.span = wider_span(self.need, taken.len());
                return None;
            }
            if let Some((lo, hi)) = self.skip
                && (lo..=hi).contains(&t)
            {
                t = lo - 1;
                continue;
            }
            if !taken.contains(&t) {
                free.push(t);
            }
            t -= 1;
        }
        Some(free)
    }

    /// The block to pass over next time, once `instants` (from
    /// [`InstantSearch::place`]) are stored.
    pub fn block_after(&self, instants: &[i64]) -> Option<(i64, i64)> {
        let Some(&lowest) = instants.iter().min() else {
            return self.skip;
        };
        match self.skip {
            // Reached down to the old block: one block.
            Some((lo, hi)) if lowest <= hi + 1 => Some((lo.min(lowest), self.now)),
            _ => Some((lowest, self.now)),
        }
    }
}

/// One item of an incoming document, as filing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// Its key within the feed (`guid:…`, `link:…`, `hash:…`).
    pub key: &'a str,
    /// Plain-text title.
    pub title: &'a str,
    /// Canonical form of its link.
    pub canonical_link: Option<&'a str>,
    /// MinHash signature of its title and excerpt.
    pub signature: Option<&'a [u32]>,
    /// Its date (see [`item_date`]).
    pub date: DateTime<Utc>,
    /// Stories the store's band index suggests as near duplicates.
    pub near: &'a [i64],
}

/// A stored item sharing a canonical link with an incoming one.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkedItem {
    /// Store id of the item.
    pub item_id: i64,
    /// Its feed.
    pub feed_id: i64,
    /// Its key within that feed.
    pub key: String,
    /// The canonical link it shares.
    pub canonical_link: String,
    /// Its story.
    pub story_id: i64,
    /// Its title.
    pub title: String,
    /// Its story's signature, to recognise a renamed item by its text.
    pub signature: Option<Signature>,
}

/// A stored story that may be a near duplicate of an incoming item.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateStory {
    /// Its signature.
    pub signature: Signature,
    /// Its date (the earliest of its items').
    pub date: DateTime<Utc>,
    /// The feeds it has items from.
    pub feeds: Vec<i64>,
}

/// What the store holds that bears on one document.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The feed's stored keys among the document's.
    pub stored_keys: HashSet<String>,
    /// Keys of the feed's items the retention pruned: never stored again.
    pub tombstones: HashSet<String>,
    /// Stored items sharing a canonical link with an incoming item, oldest first.
    pub linked: Vec<LinkedItem>,
    /// Near-duplicate candidates, by story id.
    pub stories: HashMap<i64, CandidateStory>,
}

/// What becomes of one incoming item.
#[derive(Debug, Clone, PartialEq)]
pub enum Filing {
    /// The document repeats this key further on: only the last copy counts.
    Repeated,
    /// The feed stores this key already: rewritten when its content changed.
    Update,
    /// The retention pruned this key: not stored again.
    Tombstoned,
    /// The feed gave a stored item a new key (same link and text, the old
    /// key gone from the document): that item takes the key and is rewritten.
    Rename {
        /// The stored item.
        item_id: i64,
    },
    /// A new item joining a stored story.
    Join {
        /// The story.
        story_id: i64,
        /// Why.
        reason: MergeReason,
    },
    /// A new item starting a story.
    New,
}

/// Files each item of one feed's document (`items`, in document order;
/// `listed` holds the keys of every entry of the document, also those left
/// out of `items` because they did not change).
pub fn file(
    feed_id: i64,
    items: &[Incoming<'_>],
    listed: &HashSet<&str>,
    known: &Known,
    policy: &Policy,
) -> Vec<Filing> {
    let mut last_of: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        last_of.insert(item.key, i);
    }
    let mut by_link: HashMap<&str, Vec<&LinkedItem>> = HashMap::new();
    for l in &known.linked {
        by_link
            .entry(l.canonical_link.as_str())
            .or_default()
            .push(l);
    }
    // Stories this document joined or renamed into: no later item of the
    // same document joins them by similarity.
    let mut taken: HashSet<i64> = HashSet::new();
    let mut renamed: HashSet<i64> = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if last_of.get(item.key) != Some(&i) {
            out.push(Filing::Repeated);
            continue;
        }
        if known.stored_keys.contains(item.key) {
            out.push(Filing::Update);
            continue;
        }
        if known.tombstones.contains(item.key) {
            out.push(Filing::Tombstoned);
            continue;
        }
        let linked = item
            .canonical_link
            .and_then(|l| by_link.get(l))
            .map_or(&[][..], Vec::as_slice);
        if let Some(old) = renamed_from(feed_id, item, linked, listed, &renamed, policy) {
            renamed.insert(old.item_id);
            taken.insert(old.story_id);
            out.push(Filing::Rename {
                item_id: old.item_id,
            });
            continue;
        }
        let filing = match same_link(feed_id, linked) {
            Some(story_id) => Filing::Join {
                story_id,
                reason: MergeReason::SameLink,
            },
            None => match near_duplicate(feed_id, item, known, &taken, policy) {
                Some((story_id, score)) => Filing::Join {
                    story_id,
                    reason: MergeReason::NearDuplicate(score),
                },
                None => Filing::New,
            },
        };
        if let Filing::Join { story_id, .. } = &filing {
            taken.insert(*story_id);
        }
        out.push(filing);
    }
    out
}

/// A stored item of the same feed that `item` renames: same canonical link,
/// a key the document no longer lists, and the same title or a
/// near-identical text (many feeds link every item to one page).
fn renamed_from<'a>(
    feed_id: i64,
    item: &Incoming<'_>,
    linked: &[&'a LinkedItem],
    listed: &HashSet<&str>,
    renamed: &HashSet<i64>,
    policy: &Policy,
) -> Option<&'a LinkedItem> {
    linked.iter().copied().find(|l| {
        l.feed_id == feed_id
            && l.key != item.key
            && !listed.contains(l.key.as_str())
            && !renamed.contains(&l.item_id)
            && (l.title == item.title
                || matches!((item.signature, &l.signature), (Some(a), Some(b))
                    if dedup::similarity(a, b) >= policy.threshold))
    })
}

/// The story of the oldest item of another feed with the same canonical link.
fn same_link(feed_id: i64, linked: &[&LinkedItem]) -> Option<i64> {
    linked
        .iter()
        .find(|l| l.feed_id != feed_id)
        .map(|l| l.story_id)
}

/// The most similar candidate story (ties: the oldest) that has no item of
/// this feed, is dated within the window of the item and reaches the
/// threshold.
fn near_duplicate(
    feed_id: i64,
    item: &Incoming<'_>,
    known: &Known,
    taken: &HashSet<i64>,
    policy: &Policy,
) -> Option<(i64, f64)> {
    let sig = item.signature?;
    let date = item.date.timestamp();
    item.near
        .iter()
        .filter(|id| !taken.contains(id))
        .filter_map(|id| Some((*id, known.stories.get(id)?)))
        .filter(|(_, s)| !s.feeds.contains(&feed_id))
        .filter(|(_, s)| (s.date.timestamp() - date).abs() <= policy.window_secs)
        .map(|(id, s)| (id, dedup::similarity(sig, &s.signature)))
        .filter(|(_, score)| *score >= policy.threshold)
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
}

/// One stored item of a story, as a listing reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Store id of the item.
    pub item_id: i64,
    /// Its feed's priority.
    pub priority: i64,
    /// Its date.
    pub date: DateTime<Utc>,
    /// Its canonical link.
    pub canonical_link: Option<String>,
    /// Why it was filed into the story.
    pub reason: MergeReason,
}

/// How a story's item relates to the story, as shown to users.
#[derive(Debug, Clone, PartialEq)]
pub enum Relation {
    /// The item whose title and link the story shows.
    Primary,
    /// Shares a canonical link with another item of the story.
    SameLink,
    /// Near-identical text, with its similarity.
    NearDuplicate(Option<f64>),
}

impl Relation {
    /// The label shown (`primary`, `same link`, `near duplicate`).
    pub fn label(&self) -> &'static str {
        match self {
            Relation::Primary => "primary",
            Relation::SameLink => "same link",
            Relation::NearDuplicate(_) => "near duplicate",
        }
    }

    /// The similarity, for near duplicates.
    pub fn score(&self) -> Option<f64> {
        match self {
            Relation::NearDuplicate(s) => *s,
            _ => None,
        }
    }
}

/// Orders a story's items, primary first (highest feed priority, then
/// earliest, then first stored), and says how each relates to the story.
/// Returns the positions in `members` in that order, with their relation.
pub fn rank_sources(members: &[Member]) -> Vec<(usize, Relation)> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&members[a], &members[b]);
        y.priority
            .cmp(&x.priority)
            .then(x.date.cmp(&y.date))
            .then(x.item_id.cmp(&y.item_id))
    });
    // When the primary joined as a near duplicate, its score is its
    // similarity to the item that started the story.
    let primary_score = order.first().and_then(|&p| members[p].reason.score());
    order
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            let m = &members[i];
            let relation = if rank == 0 {
                Relation::Primary
            } else {
                match m.reason {
                    MergeReason::SameLink => Relation::SameLink,
                    MergeReason::NearDuplicate(s) => Relation::NearDuplicate(Some(s)),
                    // It started the story but another item is the primary:
                    // say how the two relate.
                    MergeReason::First => {
                        let shared = m.canonical_link.is_some()
                            && members.iter().any(|o| {
                                o.item_id != m.item_id && o.canonical_link == m.canonical_link
                            });
                        if shared {
                            Relation::SameLink
                        } else {
                            Relation::NearDuplicate(primary_score)
                        }
                    }
                }
            };
            (i, relation)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    const POLICY: Policy = Policy {
        window_secs: 7 * 86_400,
        threshold: 0.5,
    };

    /// The injected clock: every date is relative to it.
    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).unwrap()
    }

    fn days_ago(d: i64) -> DateTime<Utc> {
        now() - TimeDelta::days(d)
    }

    fn sig(text: &str) -> Signature {
        dedup::signature(text, "").unwrap()
    }

    const VOTE: &str = "States at the UN General Assembly vote to scrutinise Russia's human rights record in a first country resolution";
    const VOTE_EDITED: &str = "States at UN General Assembly vote to scrutinise Russia’s human rights record in a first country resolution | FLD";
    const TRIAL: &str = "The trial of a human rights lawyer opened in Beijing behind closed doors and diplomats were turned away";

    struct Doc {
        keys: Vec<String>,
        titles: Vec<String>,
        links: Vec<Option<String>>,
        sigs: Vec<Signature>,
        dates: Vec<DateTime<Utc>>,
        near: Vec<Vec<i64>>,
    }

    impl Doc {
        fn new() -> Doc {
            Doc {
                keys: vec![],
                titles: vec![],
                links: vec![],
                sigs: vec![],
                dates: vec![],
                near: vec![],
            }
        }

        fn item(mut self, key: &str, text: &str, link: Option<&str>, date: DateTime<Utc>) -> Doc {
            self.keys.push(key.into());
            self.titles.push(text.into());
            self.links.push(link.map(String::from));
            self.sigs.push(sig(text));
            self.dates.push(date);
            self.near.push(vec![]);
            self
        }

        fn near(mut self, stories: &[i64]) -> Doc {
            *self.near.last_mut().unwrap() = stories.to_vec();
            self
        }

        fn file(&self, feed: i64, known: &Known) -> Vec<Filing> {
            let items: Vec<Incoming> = (0..self.keys.len())
                .map(|i| Incoming {
                    key: &self.keys[i],
                    title: &self.titles[i],
                    canonical_link: self.links[i].as_deref(),
                    signature: Some(&self.sigs[i]),
                    date: self.dates[i],
                    near: &self.near[i],
                })
                .collect();
            let listed: HashSet<&str> = self.keys.iter().map(String::as_str).collect();
            file(feed, &items, &listed, known, &POLICY)
        }
    }

    fn story(text: &str, date: DateTime<Utc>, feeds: &[i64]) -> CandidateStory {
        CandidateStory {
            signature: sig(text),
            date,
            feeds: feeds.to_vec(),
        }
    }

    fn linked(item_id: i64, feed_id: i64, key: &str, link: &str, story_id: i64) -> LinkedItem {
        LinkedItem {
            item_id,
            feed_id,
            key: key.into(),
            canonical_link: link.into(),
            story_id,
            title: VOTE.into(),
            signature: Some(sig(VOTE)),
        }
    }

    fn near(story_id: i64, score: f64) -> Filing {
        Filing::Join {
            story_id,
            reason: MergeReason::NearDuplicate(score),
        }
    }

    #[test]
    fn a_new_item_with_nothing_like_it_starts_a_story() {
        let doc = Doc::new().item("g1", VOTE, Some("https://a.org/1"), days_ago(1));
        assert_eq!(doc.file(1, &Known::default()), vec![Filing::New]);
    }

    #[test]
    fn stored_keys_update_in_place_and_tombstones_stay_out() {
        let known = Known {
            stored_keys: ["g1".to_string()].into(),
            tombstones: ["g2".to_string()].into(),
            ..Known::default()
        };
        let doc =
            Doc::new()
                .item("g1", VOTE, None, days_ago(1))
                .item("g2", TRIAL, None, days_ago(400));
        assert_eq!(
            doc.file(1, &known),
            vec![Filing::Update, Filing::Tombstoned]
        );
    }

    #[test]
    fn a_repeated_key_counts_once_the_last_copy() {
        let doc = Doc::new().item("g1", VOTE, None, days_ago(1)).item(
            "g1",
            VOTE_EDITED,
            None,
            days_ago(1),
        );
        assert_eq!(
            doc.file(1, &Known::default()),
            vec![Filing::Repeated, Filing::New]
        );
    }

    #[test]
    fn guid_churn_with_the_same_link_and_title_is_a_rename() {
        let link = "https://ishr.ch/news/vote";
        let known = Known {
            linked: vec![linked(10, 1, "guid:old", link, 5)],
            ..Known::default()
        };
        let doc = Doc::new().item("guid:new", VOTE, Some(link), days_ago(1));
        assert_eq!(doc.file(1, &known), vec![Filing::Rename { item_id: 10 }]);
        // Edited text under the new guid: still the same item by similarity.
        let doc = Doc::new().item("guid:new", VOTE_EDITED, Some(link), days_ago(1));
        let mut k = known.clone();
        k.linked[0].title = "something else".into();
        assert_eq!(doc.file(1, &k), vec![Filing::Rename { item_id: 10 }]);
    }

    #[test]
    fn an_item_still_listed_or_with_other_text_is_not_renamed() {
        let link = "https://ishr.ch/press-briefing";
        let known = Known {
            linked: vec![linked(10, 1, "guid:old", link, 5)],
            ..Known::default()
        };
        // The old key is still in the document: two items share the link.
        let doc = Doc::new()
            .item("guid:new", VOTE, Some(link), days_ago(1))
            .item("guid:old", VOTE, Some(link), days_ago(1));
        let mut k = known.clone();
        k.stored_keys.insert("guid:old".into());
        assert_eq!(doc.file(1, &k), vec![Filing::New, Filing::Update]);
        // Gone from the document, but another text: a new item on the same page.
        let doc = Doc::new().item("guid:new", TRIAL, Some(link), days_ago(1));
        assert_eq!(doc.file(1, &known), vec![Filing::New]);
    }

    #[test]
    fn the_same_link_in_another_feed_joins_its_story_whatever_the_dates() {
        let link = "https://ohchr.org/en/press-releases/2026/11/russia-vote";
        let known = Known {
            linked: vec![
                linked(10, 2, "guid:a", link, 5),
                linked(11, 3, "guid:b", link, 6),
            ],
            ..Known::default()
        };
        let doc = Doc::new().item("guid:c", TRIAL, Some(link), days_ago(300));
        assert_eq!(
            doc.file(1, &known),
            vec![Filing::Join {
                story_id: 5,
                reason: MergeReason::SameLink
            }],
            "the oldest item's story"
        );
    }

    #[test]
    fn a_near_duplicate_within_the_window_joins_outside_it_does_not() {
        let known = Known {
            stories: [(7, story(VOTE, days_ago(10), &[2]))].into(),
            ..Known::default()
        };
        let inside = Doc::new()
            .item("g1", VOTE_EDITED, None, days_ago(4))
            .near(&[7]);
        let filed = inside.file(1, &known);
        assert!(
            matches!(filed[0], Filing::Join { story_id: 7, reason: MergeReason::NearDuplicate(s) } if s >= 0.5),
            "{filed:?}"
        );
        let outside = Doc::new()
            .item("g1", VOTE_EDITED, None, days_ago(18))
            .near(&[7]);
        assert_eq!(outside.file(1, &known), vec![Filing::New]);
        // A dissimilar candidate is not joined either.
        let other = Doc::new().item("g1", TRIAL, None, days_ago(10)).near(&[7]);
        assert_eq!(other.file(1, &known), vec![Filing::New]);
    }

    #[test]
    fn a_late_backlog_item_weeks_old_joins_its_story() {
        // A feed added today carries a three-week-old story another feed
        // delivered then: the dates are close to each other, not to now.
        let known = Known {
            stories: [(7, story(VOTE, days_ago(22), &[2]))].into(),
            ..Known::default()
        };
        let doc = Doc::new()
            .item("g1", VOTE_EDITED, None, days_ago(21))
            .near(&[7]);
        assert!(matches!(
            doc.file(1, &known)[0],
            Filing::Join { story_id: 7, .. }
        ));
    }

    #[test]
    fn two_items_of_one_feed_are_never_one_story_by_similarity() {
        // The candidate already has an item of this feed.
        let known = Known {
            stories: [(7, story(VOTE, days_ago(2), &[1]))].into(),
            ..Known::default()
        };
        let doc = Doc::new().item("g2", VOTE, None, days_ago(2)).near(&[7]);
        assert_eq!(doc.file(1, &known), vec![Filing::New]);
        // Two copies in one document: the first joins, the second may not.
        let known = Known {
            stories: [(7, story(VOTE, days_ago(2), &[2]))].into(),
            ..Known::default()
        };
        let doc = Doc::new()
            .item("g1", VOTE, None, days_ago(2))
            .near(&[7])
            .item("g2", VOTE, None, days_ago(2))
            .near(&[7]);
        assert_eq!(doc.file(1, &known), vec![near(7, 1.0), Filing::New]);
    }

    #[test]
    fn the_most_similar_candidate_wins_then_the_oldest() {
        let known = Known {
            stories: [
                (7, story(VOTE_EDITED, days_ago(2), &[2])),
                (8, story(VOTE, days_ago(2), &[3])),
                (9, story(VOTE, days_ago(2), &[4])),
            ]
            .into(),
            ..Known::default()
        };
        let doc = Doc::new()
            .item("g1", VOTE, None, days_ago(2))
            .near(&[9, 7, 8]);
        assert_eq!(doc.file(1, &known), vec![near(8, 1.0)]);
    }

    #[test]
    fn a_candidate_the_index_did_not_suggest_or_the_store_no_longer_has_is_ignored() {
        // A pruned story left in a band index: the store found no such story.
        let doc = Doc::new().item("g1", VOTE, None, days_ago(2)).near(&[7]);
        assert_eq!(doc.file(1, &Known::default()), vec![Filing::New]);
        let known = Known {
            stories: [(7, story(VOTE, days_ago(2), &[2]))].into(),
            ..Known::default()
        };
        let doc = Doc::new().item("g1", VOTE, None, days_ago(2));
        assert_eq!(doc.file(1, &known), vec![Filing::New]);
    }

    #[test]
    fn an_undated_item_is_filed_at_the_injected_now() {
        assert_eq!(item_date(None, None, now()), now());
        assert_eq!(item_date(None, Some(days_ago(3)), now()), days_ago(3));
        assert_eq!(
            item_date(Some(days_ago(4)), Some(days_ago(3)), now()),
            days_ago(4)
        );
    }

    #[test]
    fn free_instants_skip_stored_ones_latest_first() {
        let taken: HashSet<i64> = [100, 98].into();
        let place = |need: usize, span: i64| {
            let mut search = InstantSearch::new(100, need, None);
            search.span = span;
            search.place(&taken)
        };
        assert_eq!(place(3, 11), Some(vec![99, 97, 96]));
        assert_eq!(place(0, 1), Some(vec![]));
        // Not enough room above the floor: read further back.
        assert_eq!(place(3, 4), None);
        let span = wider_span(3, taken.len());
        assert!(span > 4);
        assert_eq!(place(3, span), Some(vec![99, 97, 96]));
    }

    #[test]
    fn instant_search_passes_over_the_block_it_already_took() {
        // Stored: 100, 98; the process took 90..=95 earlier (at now = 95).
        let mut taken: HashSet<i64> = [100, 98].into();
        taken.extend(90..=95);
        let read = |ranges: [(i64, i64); 2]| -> HashSet<i64> {
            taken
                .iter()
                .copied()
                .filter(|t| ranges.iter().any(|(a, b)| (a..=b).contains(&t)))
                .collect()
        };
        let mut search = InstantSearch::new(100, 6, Some((90, 95)));
        let mut reads = 0;
        let got = loop {
            let ranges = search.ranges();
            // The block is never read.
            assert!(
                ranges.iter().all(|(a, b)| a > b || *b < 90 || *a > 95),
                "{ranges:?}"
            );
            reads += 1;
            if let Some(got) = search.place(&read(ranges)) {
                break got;
            }
        };
        // The same instants a full read gives, the block skipped.
        assert_eq!(got, vec![99, 97, 96, 89, 88, 87]);
        assert!(reads <= 3, "{reads}");
        assert_eq!(search.block_after(&got), Some((87, 100)));
        // Far above an old block: a new block.
        let search = InstantSearch::new(1000, 1, Some((87, 100)));
        assert_eq!(search.block_after(&[1000]), Some((1000, 1000)));
        // The clock went back: the block is ignored.
        let search = InstantSearch::new(50, 1, Some((87, 100)));
        assert_eq!(search.ranges(), [(50, 50), (1, 0)]);
    }

    fn member(
        item_id: i64,
        priority: i64,
        date: i64,
        link: Option<&str>,
        reason: MergeReason,
    ) -> Member {
        Member {
            item_id,
            priority,
            date: days_ago(date),
            canonical_link: link.map(String::from),
            reason,
        }
    }

    #[test]
    fn priority_then_date_picks_the_primary_and_others_say_how_they_relate() {
        let members = vec![
            member(1, 0, 21, None, MergeReason::First),
            member(2, 0, 20, None, MergeReason::NearDuplicate(0.8)),
            member(3, 10, 19, None, MergeReason::NearDuplicate(0.7)),
        ];
        let ranked = rank_sources(&members);
        assert_eq!(
            ranked,
            vec![
                (2, Relation::Primary),
                // It started the story; the primary joined it at 0.7.
                (0, Relation::NearDuplicate(Some(0.7))),
                (1, Relation::NearDuplicate(Some(0.8))),
            ]
        );
        // Same priority: the earliest, then the first stored.
        let members = vec![
            member(5, 0, 2, Some("https://a.org/x"), MergeReason::SameLink),
            member(4, 0, 3, Some("https://a.org/x"), MergeReason::First),
            member(6, 0, 2, None, MergeReason::NearDuplicate(0.9)),
        ];
        assert_eq!(
            rank_sources(&members),
            vec![
                (1, Relation::Primary),
                (0, Relation::SameLink),
                (2, Relation::NearDuplicate(Some(0.9))),
            ]
        );
    }
}
