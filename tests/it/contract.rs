//! The store contract suite: every backend passes the same tests, written
//! once against [`Store`] and instantiated per backend by
//! `contract_suite!`. SQLite runs everywhere; a backend that needs a server
//! instantiates the suite with its own [`TestDb`] (see `postgres` below).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use gazette::config::{FeedConfig, FeedSource};
use gazette::dedup;
use gazette::filing::Policy;
use gazette::model::{DeliveryState, FetchState, FetchStatus, Item, ItemQuery, PeriodStatus};
use gazette::store::{DeliveryOutcome, Document, HttpValidator, Prepared, Store, StoreError};
use gazette::tag::Tagging;

/// A database for one test: it opens store handles on it (several, as
/// several processes would) and cleans up when dropped.
trait TestDb: Sized {
    /// A new, empty database.
    async fn create() -> Option<Self>;
    /// A handle on it.
    async fn open(&self) -> Store;
}

/// A temporary SQLite file.
struct SqliteDb {
    dir: tempfile::TempDir,
}

impl TestDb for SqliteDb {
    async fn create() -> Option<Self> {
        Some(SqliteDb {
            dir: tempfile::tempdir().unwrap(),
        })
    }

    async fn open(&self) -> Store {
        let url = gazette::config::DatabaseUrl::Sqlite(self.dir.path().join("contract.db"));
        Store::open(&url).await.unwrap()
    }
}

/// Instantiates every contract test for a [`TestDb`].
macro_rules! contract_suite {
    ($module:ident, $db:ty) => {
        mod $module {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let Some(db) = <$db as TestDb>::create().await else {
                            return;
                        };
                        super::$name(&db).await;
                    }
                };
            }

            case!(filing_joins_same_links_and_near_duplicates_and_keeps_others_apart);
            case!(a_late_backlog_item_joins_its_weeks_old_story);
            case!(a_renamed_item_is_updated_not_duplicated);
            case!(an_unchanged_item_is_not_rewritten_and_an_edit_is);
            case!(undated_items_and_changes_never_share_an_instant);
            case!(a_joined_story_keeps_its_updated_instant);
            case!(retagging_changes_tags_listings_and_the_content_version);
            case!(listing_by_tag_since_limit_and_exclusion);
            case!(pruning_leaves_tombstones_and_keeps_the_newest_ids);
            case!(fetch_state_round_trips_and_a_new_url_starts_afresh);
            case!(http_validators_store_key_and_content_version);
            case!(digest_ledger_moves_queued_pending_sent_failed_with_compare_and_set);
            case!(one_digest_sender_at_a_time);
            case!(periods_are_per_digest_with_topics_skips_issues_and_suppressions);
            case!(a_due_feed_is_leased_by_one_owner_and_taken_over_when_its_lease_expires);
            case!(two_handles_writing_alternately_see_each_others_stories);
        }
    };
}

contract_suite!(sqlite, SqliteDb);
contract_suite!(postgres, PgDb);

/// A database of its own on the PostgreSQL server that
/// `GAZETTE_TEST_POSTGRES_URL` names, dropped afterwards. Without that
/// variable the PostgreSQL cases do nothing (`.ci/run` sets it).
pub struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    /// A new, empty database, or `None` when no server is configured.
    pub async fn new() -> Option<PgDb> {
        use sqlx::Connection;
        let admin = std::env::var("GAZETTE_TEST_POSTGRES_URL").ok()?;
        let name = format!("gazette_test_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("GAZETTE_TEST_POSTGRES_URL names a reachable server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        Some(PgDb {
            admin,
            name,
            url: url.to_string(),
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Dropped from a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

impl TestDb for PgDb {
    async fn create() -> Option<Self> {
        PgDb::new().await
    }

    async fn open(&self) -> Store {
        let url = gazette::config::DatabaseUrl::Postgres(self.url.clone());
        Store::open(&url).await.unwrap()
    }
}

// ---- fixtures ----

const POLICY: Policy = Policy {
    window_secs: 7 * 86_400,
    threshold: 0.5,
};

const VOTE: &str =
    "States at the UN General Assembly vote to scrutinise Russia's human rights record";
const VOTE_TEXT: &str = "On Thursday a majority of States at the UN General Assembly Third Committee voted in favour of the first country resolution on Russia, asking the Secretary-General to report on arbitrary detention of anti-war protesters.";
const VOTE_EDITED: &str =
    "States at UN General Assembly vote to scrutinise Russia’s human rights record | FLD";
const TRIAL: &str = "Trial of a human rights lawyer opens in Beijing behind closed doors";
const TRIAL_TEXT: &str = "The trial of the human rights lawyer opened in Beijing on Monday behind closed doors, and diplomats who asked to attend were turned away by the court police.";

/// The tests' clock: every date is relative to it, never to the wall clock.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).unwrap()
}

fn days_ago(d: i64) -> DateTime<Utc> {
    now() - TimeDelta::days(d)
}

fn feed(name: &str) -> FeedConfig {
    FeedConfig {
        name: name.into(),
        source: FeedSource::Http(format!("https://{name}.example/feed").parse().unwrap()),
        tags: vec![],
        interval: Duration::from_secs(3600),
        priority: 0,
    }
}

/// An item as the pipeline makes it: canonical link and signature filled in.
fn item(key: &str, title: &str, text: &str, link: Option<&str>, date: DateTime<Utc>) -> Item {
    Item {
        key: key.into(),
        raw_hash: dedup::signature(title, text).map_or(0, |s| s[0] as i64),
        guid: Some(key.into()),
        link: link.map(String::from),
        title: title.into(),
        summary_html: None,
        content_html: Some(format!("<p>{text}</p>")),
        excerpt: text.into(),
        authors: vec![],
        categories: vec![],
        enclosures: vec![],
        published: Some(date),
        updated: None,
        tags: vec![],
        canonical_link: link.and_then(|l| dedup::canonical_link(l, &[])),
        signature: dedup::signature(title, text),
        excluded: false,
    }
}

/// Files `items` as one document of `feed_id`, fetched at `at`.
async fn file(store: &Store, feed_id: i64, items: Vec<Item>, at: DateTime<Utc>) -> (usize, usize) {
    let listed = items.iter().map(|i| i.key.clone()).collect();
    let c = store
        .file_document(Document {
            feed_id,
            items: items.into_iter().map(Prepared::new).collect(),
            listed,
            now: at,
            policy: POLICY,
        })
        .await
        .unwrap();
    (c.new, c.updated)
}

/// Each story's sources as (feed, relation), newest story first.
async fn stories(store: &Store) -> Vec<Vec<(String, String)>> {
    store
        .list_stories(&ItemQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|s| {
            s.sources
                .iter()
                .map(|src| (src.feed.clone(), src.reason.clone()))
                .collect()
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn feeds(store: &Store, names: &[&str]) -> HashMap<String, i64> {
    let configs: Vec<FeedConfig> = names.iter().map(|n| feed(n)).collect();
    store
        .sync_feeds(&configs)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.id))
        .collect()
}

// ---- the contract ----

async fn filing_joins_same_links_and_near_duplicates_and_keeps_others_apart(db: &impl TestDb) {
    let store = db.open().await;
    let f = feeds(&store, &["ishr", "ohchr", "fld"]).await;
    let link = "https://www.ohchr.org/en/press/russia-vote?utm_source=rss";
    file(
        &store,
        f["ohchr"],
        vec![
            item("o1", VOTE, VOTE_TEXT, Some(link), days_ago(3)),
            item(
                "o2",
                TRIAL,
                TRIAL_TEXT,
                Some("https://ohchr.org/trial"),
                days_ago(3),
            ),
        ],
        now(),
    )
    .await;
    // The same link in another form: the same story.
    file(
        &store,
        f["ishr"],
        vec![item(
            "i1",
            "Russia: a first country resolution",
            "Another text altogether about something else.",
            Some("http://ohchr.org/en/press/russia-vote/"),
            days_ago(2),
        )],
        now(),
    )
    .await;
    // Another URL, near-identical text: the same story.
    file(
        &store,
        f["fld"],
        vec![item(
            "f1",
            VOTE_EDITED,
            VOTE_TEXT,
            Some("https://fld.example/vote"),
            days_ago(2),
        )],
        now(),
    )
    .await;
    let all = stories(&store).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let vote = all
        .iter()
        .find(|s| s.len() == 3)
        .expect("one story, three sources");
    assert_eq!(
        vote,
        &pairs(&[
            ("ohchr", "primary"),
            ("ishr", "same link"),
            ("fld", "near duplicate")
        ])
    );
    let listed = store.list_stories(&ItemQuery::default()).await.unwrap();
    let v = listed.iter().find(|s| s.sources.len() == 3).unwrap();
    assert_eq!(v.title, VOTE);
    assert!(v.sources[2].score.unwrap() >= 0.5);
    assert_eq!(v.published, days_ago(3), "the earliest item's date");
    store.close().await;
}

async fn a_late_backlog_item_joins_its_weeks_old_story(db: &impl TestDb) {
    let store = db.open().await;
    let f = feeds(&store, &["a", "b"]).await;
    file(
        &store,
        f["a"],
        vec![item(
            "a1",
            VOTE,
            VOTE_TEXT,
            Some("https://a.example/1"),
            days_ago(22),
        )],
        days_ago(22),
    )
    .await;
    // Three weeks later a new feed's backlog carries the same story.
    file(
        &store,
        f["b"],
        vec![item(
            "b1",
            VOTE_EDITED,
            VOTE_TEXT,
            Some("https://b.example/1"),
            days_ago(21),
        )],
        now(),
    )
    .await;
    // And two copies more than a window apart stay apart.
    file(
        &store,
        f["a"],
        vec![item(
            "a2",
            TRIAL,
            TRIAL_TEXT,
            Some("https://a.example/2"),
            days_ago(40),
        )],
        now(),
    )
    .await;
    file(
        &store,
        f["b"],
        vec![item(
            "b2",
            TRIAL,
            TRIAL_TEXT,
            Some("https://b.example/2"),
            days_ago(30),
        )],
        now(),
    )
    .await;
    let mut sizes: Vec<usize> = stories(&store).await.iter().map(Vec::len).collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 1, 2]);
    store.close().await;
}

async fn a_renamed_item_is_updated_not_duplicated(db: &impl TestDb) {
    let store = db.open().await;
    let f = feeds(&store, &["cms"]).await;
    let link = Some("https://cms.example/news/vote");
    file(
        &store,
        f["cms"],
        vec![item("guid:old", VOTE, VOTE_TEXT, link, days_ago(1))],
        now(),
    )
    .await;
    let mut renamed = item("guid:new", VOTE, VOTE_TEXT, link, days_ago(1));
    renamed.raw_hash += 1;
    assert_eq!(file(&store, f["cms"], vec![renamed], now()).await, (0, 1));
    let listed = store.list_stories(&ItemQuery::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].guid.as_deref(), Some("guid:new"));
    let known = store.known_hashes(f["cms"]).await.unwrap();
    assert_eq!(known.keys().collect::<Vec<_>>(), vec!["guid:new"]);
    store.close().await;
}

async fn an_unchanged_item_is_not_rewritten_and_an_edit_is(db: &impl TestDb) {
    let store = db.open().await;
    let f = feeds(&store, &["a"]).await;
    let first = item(
        "k",
        VOTE,
        VOTE_TEXT,
        Some("https://a.example/v"),
        days_ago(1),
    );
    assert_eq!(
        file(&store, f["a"], vec![first.clone()], now()).await,
        (1, 0)
    );
    assert_eq!(
        file(&store, f["a"], vec![first.clone()], now()).await,
        (0, 0)
    );
    let mut edited = first;
    edited.title = "Edited title".into();
    edited.raw_hash += 1;
    assert_eq!(file(&store, f["a"], vec![edited], now()).await, (0, 1));
    let listed = store.list_stories(&ItemQuery::default()).await.unwrap();
    assert_eq!(listed[0].title, "Edited title");
    assert!(listed[0].changed_at.is_some());
    store.close().await;
}

/// An item without a date, with its own words (so that nothing joins it).
fn undated(key: &str, words: &str) -> Item {
    let title = format!("Undated report {key}: {words}");
    let text = format!("{words} was reported by the feed {key} without any date at all.");
    let mut i = item(key, &title, &text, None, now());
    i.published = None;
    i
}

async fn undated_items_and_changes_never_share_an_instant(db: &impl TestDb) {
    let store = db.open().await;
    let f = feeds(&store, &["a", "b"]).await;
    let secs = |d: DateTime<Utc>| d.timestamp();
    let t = secs(now());
    let dated = item(
        "d",
        VOTE,
        VOTE_TEXT,
        Some("https://a.example/v"),
        days_ago(1),
    );
    let a = vec![
        undated("a1", "floods in the northern valley"),
        dated,
        undated("a2", "a court hearing on press freedom"),
        undated("a3", "the harvest festival of the lake villages"),
    ];
    // Two feeds fetched in the same second.
    assert_eq!(file(&store, f["a"], a.clone(), now()).await, (4, 0));
    let b = vec![
        undated("b1", "a new school opened by the river"),
        undated("b2", "the mountain railway reopens"),
    ];
    assert_eq!(file(&store, f["b"], b.clone(), now()).await, (2, 0));
    let dates = |listed: &[gazette::model::Story]| -> HashMap<String, i64> {
        listed
            .iter()
            .map(|s| (s.guid.clone().unwrap(), secs(s.published)))
            .collect()
    };
    let listed = store.list_stories(&ItemQuery::default()).await.unwrap();
    let first = dates(&listed);
    // Document order, the latest first, below the fetch time; the real date kept.
    assert_eq!(first["a1"], t);
    assert_eq!(first["a2"], t - 1);
    assert_eq!(first["a3"], t - 2);
    assert_eq!(first["b1"], t - 3);
    assert_eq!(first["b2"], t - 4);
    assert_eq!(first["d"], secs(days_ago(1)));
    let guids: Vec<String> = listed.iter().map(|s| s.guid.clone().unwrap()).collect();
    assert_eq!(guids, ["a1", "a2", "a3", "b1", "b2", "d"]);

    // Ten seconds later: two undated items are edited, one is new, and the
    // dated story is edited too; each change takes a second of its own.
    let later = now() + TimeDelta::seconds(10);
    let mut a = a;
    for i in [0usize, 2, 1] {
        a[i].excerpt.push_str(" (corrected)");
        a[i].raw_hash += 1;
    }
    a.insert(0, undated("a0", "the parliament votes on the budget"));
    assert_eq!(file(&store, f["a"], a.clone(), later).await, (1, 3));
    let listed = store.list_stories(&ItemQuery::default()).await.unwrap();
    let second = dates(&listed);
    assert_eq!(second["a0"], t + 10);
    for key in ["a1", "a2", "a3", "b1", "b2", "d"] {
        assert_eq!(second[key], first[key], "{key} keeps its date");
    }
    // What a published entry shows as `updated`: all distinct.
    let updated: Vec<i64> = listed
        .iter()
        .map(|s| {
            [Some(s.published), s.updated, s.changed_at]
                .into_iter()
                .flatten()
                .max()
                .map(secs)
                .unwrap()
        })
        .collect();
    let mut distinct = updated.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), updated.len(), "{updated:?}");
    let changed: Vec<i64> = listed
        .iter()
        .filter_map(|s| s.changed_at)
        .map(secs)
        .collect();
    assert_eq!(changed.len(), 3);
    assert!(
        changed.iter().all(|c| (t + 7..=t + 9).contains(c)),
        "{changed:?}"
    );

    // Filed again unchanged, and read by another handle: nothing moves.
    assert_eq!(
        file(&store, f["a"], a, later + TimeDelta::seconds(5)).await,
        (0, 0)
    );
    let other = db.open().await;
    let again = other.list_stories(&ItemQuery::default()).await.unwrap();
    assert_eq!(dates(&again), second);
    assert_eq!(
        again.iter().map(|s| s.changed_at).collect::<Vec<_>>(),
        listed.iter().map(|s| s.changed_at).collect::<Vec<_>>()
    );
    other.close().await;
    store.close().await;
}

/// What a published entry shows as `updated` (see `publish::entry`).
fn shown_updated(s: &gazette::model::Story) -> DateTime<Utc> {
    [Some(s.published), s.updated, s.changed_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap()
}

async fn a_joined_story_keeps_its_updated_instant(db: &impl TestDb) {
    let store = db.open().await;
    let f = feeds(&store, &["a", "b"]).await;
    let mut vote = item("a1", VOTE, VOTE_TEXT, None, now());
    vote.published = None;
    let trial = item(
        "a2",
        TRIAL,
        TRIAL_TEXT,
        Some("https://a.example/t"),
        days_ago(1),
    );
    assert_eq!(
        file(&store, f["a"], vec![vote, trial], days_ago(0)).await,
        (2, 0)
    );
    // By title: the backlog copy becomes the trial's primary (the earliest).
    let by_title = |listed: Vec<gazette::model::Story>| -> HashMap<String, gazette::model::Story> {
        listed.into_iter().map(|s| (s.title.clone(), s)).collect()
    };
    let before = by_title(store.list_stories(&ItemQuery::default()).await.unwrap());
    assert_eq!(before[VOTE].published, now());

    // An hour later feed b carries both: the undated story again, and the
    // trial from its backlog, dated a day before feed a's copy.
    let later = now() + TimeDelta::hours(1);
    let mut vote_b = item("b1", VOTE, VOTE_TEXT, None, later);
    vote_b.published = None;
    let trial_b = item(
        "b2",
        TRIAL,
        TRIAL_TEXT,
        Some("https://b.example/t"),
        days_ago(2),
    );
    assert_eq!(
        file(&store, f["b"], vec![vote_b, trial_b], later).await,
        (2, 0)
    );
    let listed = store.list_stories(&ItemQuery::default()).await.unwrap();
    assert_eq!(listed.len(), 2, "both joined their stories");
    let after = by_title(listed);
    let (vote, trial) = (&after[VOTE], &after[TRIAL]);
    assert_eq!(trial.guid.as_deref(), Some("b2"));
    assert_eq!(vote.sources.len(), 2);
    assert_eq!(trial.sources.len(), 2);
    // The joined story keeps its date and its `updated`.
    assert_eq!(vote.published, before[VOTE].published);
    assert_eq!(vote.changed_at, None);
    assert_eq!(shown_updated(vote), shown_updated(&before[VOTE]));
    // The backlog copy moves the trial's date back a day; its `updated`
    // stays where it was instead of going back with it.
    assert_eq!(trial.published, days_ago(2));
    assert_eq!(trial.changed_at, Some(days_ago(1)));
    assert_eq!(shown_updated(trial), shown_updated(&before[TRIAL]));
    store.close().await;
}

async fn retagging_changes_tags_listings_and_the_content_version(db: &impl TestDb) {
    let store = db.open().await;
    let f = feeds(&store, &["a"]).await;
    let mut tagged = item("k1", VOTE, VOTE_TEXT, None, days_ago(1));
    tagged.tags = vec!["un".into()];
    file(
        &store,
        f["a"],
        vec![tagged, item("k2", TRIAL, TRIAL_TEXT, None, days_ago(1))],
        now(),
    )
    .await;
    let by_tag = |tag: &'static str| {
        let store = store.clone();
        async move {
            store
                .list_stories(&ItemQuery {
                    tag: Some(tag.into()),
                    ..ItemQuery::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.title)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(by_tag("un").await, vec![VOTE]);
    let before = store.content_version().await.unwrap();
    let mut items = store.items_for_tagging(0, 100).await.unwrap();
    assert_eq!(items.len(), 2);
    items.sort_by_key(|i| i.item_id);
    assert_eq!(items[0].feed, "a");
    let retag: Vec<(i64, Tagging)> = items
        .iter()
        .map(|i| {
            let tags = if i.title == TRIAL {
                vec!["china".to_string()]
            } else {
                vec![]
            };
            (
                i.item_id,
                Tagging {
                    tags,
                    excluded: false,
                },
            )
        })
        .collect();
    assert_eq!(store.set_tagging(&retag).await.unwrap(), 2);
    assert_eq!(
        store.set_tagging(&retag).await.unwrap(),
        0,
        "nothing changed"
    );
    assert!(store.content_version().await.unwrap() > before);
    assert_eq!(by_tag("china").await, vec![TRIAL]);
    assert!(by_tag("un").await.is_empty());
    assert_eq!(store.tag_rules().await.unwrap(), None);
    store.set_tag_rules("rules-1").await.unwrap();
    assert_eq!(store.tag_rules().await.unwrap().as_deref(), Some("rules-1"));
    store.close().await;
}

async fn listing_by_tag_since_limit_and_exclusion(db: &impl TestDb) {
    let store = db.open().await;
    let f = feeds(&store, &["a"]).await;
    let mut items = Vec::new();
    for d in 1..=5 {
        let mut it = item(
            &format!("k{d}"),
            &format!(
                "Story {d} {}",
                ["alpha", "beta", "gamma", "delta", "epsilon"][d as usize - 1]
            ),
            &format!(
                "Entirely different text number {d} {}",
                "word ".repeat(d as usize)
            ),
            None,
            days_ago(d),
        );
        it.tags = vec![if d % 2 == 0 { "even" } else { "odd" }.into()];
        it.excluded = d == 3;
        items.push(it);
    }
    file(&store, f["a"], items, now()).await;
    let titles = |q: ItemQuery| {
        let store = store.clone();
        async move {
            store
                .list_stories(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.title.split(' ').nth(1).unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        titles(ItemQuery::default()).await,
        ["1", "2", "4", "5"],
        "newest first, excluded out"
    );
    let all = ItemQuery {
        include_excluded: true,
        ..ItemQuery::default()
    };
    assert_eq!(titles(all).await, ["1", "2", "3", "4", "5"]);
    let odd = ItemQuery {
        tag: Some("odd".into()),
        ..ItemQuery::default()
    };
    assert_eq!(titles(odd).await, ["1", "5"]);
    let since = ItemQuery {
        since: Some(days_ago(2)),
        limit: Some(1),
        ..ItemQuery::default()
    };
    assert_eq!(titles(since).await, ["1"]);
    let since = ItemQuery {
        since: Some(days_ago(4)),
        ..ItemQuery::default()
    };
    assert_eq!(titles(since).await, ["1", "2", "4"]);
    assert_eq!(store.story_count().await.unwrap(), 5);
    let stored = store
        .story_ids_stored_between(now(), now() + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(stored.len(), 5, "first stored at the document's fetch time");
    assert!(
        store
            .story_ids_stored_between(days_ago(1), now())
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
}

async fn pruning_leaves_tombstones_and_keeps_the_newest_ids(db: &impl TestDb) {
    let store = db.open().await;
    let f = feeds(&store, &["a"]).await;
    let items = vec![
        item("old1", VOTE, VOTE_TEXT, None, days_ago(400)),
        item("old2", TRIAL, TRIAL_TEXT, None, days_ago(300)),
        item(
            "new",
            "A recent story",
            "Recent text of the recent story.",
            None,
            days_ago(1),
        ),
    ];
    file(&store, f["a"], items.clone(), days_ago(200)).await;
    let pruned = store.prune_stories(days_ago(100), now()).await.unwrap();
    assert_eq!(pruned, 2);
    assert_eq!(store.story_count().await.unwrap(), 1);
    // The feed still lists them: they are not stored again.
    let mut again = items;
    for i in &mut again {
        i.raw_hash += 7;
    }
    assert_eq!(file(&store, f["a"], again, now()).await, (0, 1));
    assert_eq!(store.story_count().await.unwrap(), 1);
    // Nothing older than the cutoff but created after it goes.
    assert_eq!(store.prune_stories(now(), days_ago(500)).await.unwrap(), 0);
    store.close().await;
}

async fn fetch_state_round_trips_and_a_new_url_starts_afresh(db: &impl TestDb) {
    let store = db.open().await;
    let rows = store.sync_feeds(&[feed("a")]).await.unwrap();
    assert_eq!(rows[0].state, FetchState::default(), "a new feed");
    let st = FetchState {
        etag: Some("\"v1\"".into()),
        last_modified: Some("Mon, 23 Nov 2026 08:00:00 GMT".into()),
        permanent_url: Some("https://a.example/moved".into()),
        status: FetchStatus::Throttled,
        last_error: Some("HTTP 429".into()),
        error_count: 2,
        last_fetch_at: Some(days_ago(1)),
        last_success_at: Some(days_ago(2)),
        next_fetch_at: Some(now()),
        due_at: Some(now() + TimeDelta::hours(1)),
        title: Some("A".into()),
        site_link: Some("https://a.example/".into()),
        ttl: Some(Duration::from_secs(7200)),
    };
    store
        .save_fetch_states(&[(rows[0].id, st.clone())], None)
        .await
        .unwrap();
    let again = store.sync_feeds(&[feed("a")]).await.unwrap();
    assert_eq!(again[0].state, st);
    assert_eq!(store.feeds().await.unwrap()[0].state, st);
    // Another status kind round-trips as itself.
    let failed = FetchState {
        status: FetchStatus::Failed(gazette::model::FailureKind::Http5xx),
        ..st.clone()
    };
    store
        .save_fetch_states(&[(rows[0].id, failed.clone())], None)
        .await
        .unwrap();
    assert_eq!(store.feeds().await.unwrap()[0].state.status, failed.status);
    // A new url: validators and backoff of the old one mean nothing.
    let mut moved = feed("a");
    moved.source = FeedSource::Http("https://elsewhere.example/feed".parse().unwrap());
    let row = store.sync_feeds(&[moved]).await.unwrap().remove(0);
    assert_eq!(row.id, rows[0].id);
    assert_eq!(row.state.etag, None);
    assert_eq!(row.state.status, FetchStatus::New);
    assert_eq!(row.state.next_fetch_at, None);
    assert_eq!(row.state.due_at, None, "due at once");
    // Removed from the configuration: the row stays.
    store.sync_feeds(&[]).await.unwrap();
    assert_eq!(store.feeds().await.unwrap().len(), 1);
    store.close().await;
}

async fn http_validators_store_key_and_content_version(db: &impl TestDb) {
    let store = db.open().await;
    assert_eq!(store.http_validator("feed.atom").await.unwrap(), None);
    let v = HttpValidator {
        etag: "\"abc\"".into(),
        first_served: days_ago(1),
    };
    store.set_http_validator("feed.atom", &v).await.unwrap();
    assert_eq!(store.http_validator("feed.atom").await.unwrap(), Some(v));
    assert_eq!(store.http_validator("tags/un.atom").await.unwrap(), None);
    let key = store.store_key().await.unwrap();
    assert!(!key.is_empty());
    let other = db.open().await;
    assert_eq!(
        other.store_key().await.unwrap(),
        key,
        "the store's, not the handle's"
    );
    let before = store.content_version().await.unwrap();
    let f = feeds(&store, &["a"]).await;
    file(
        &store,
        f["a"],
        vec![item("k", VOTE, VOTE_TEXT, None, days_ago(1))],
        now(),
    )
    .await;
    assert!(other.content_version().await.unwrap() > before);
    other.close().await;
    store.close().await;
}

async fn digest_ledger_moves_queued_pending_sent_failed_with_compare_and_set(db: &impl TestDb) {
    let store = db.open().await;
    let rows = vec![
        ("a@example.org".to_string(), "<m1@x.org>".to_string()),
        ("b@example.org".to_string(), "<m2@x.org>".to_string()),
    ];
    let (p, created) = store
        .create_digest_period(days_ago(7), days_ago(0), 3, &rows, now())
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (p.status, p.stories, p.start),
        (PeriodStatus::Open, 3, days_ago(7))
    );
    let (again, created) = store
        .create_digest_period(days_ago(6), days_ago(0), 9, &rows, now())
        .await
        .unwrap();
    assert!(!created, "one period per cutoff");
    assert_eq!((again.id, again.stories), (p.id, 3));
    let d = store.deliveries(p.id).await.unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].state, d[0].attempts), (DeliveryState::Queued, 0));
    assert_eq!(d[0].message_id, "<m1@x.org>");
    // Two senders read the same queued row: only one may send it.
    assert!(store.claim_delivery(&d[0], now()).await.unwrap());
    assert!(!store.claim_delivery(&d[0], now()).await.unwrap());
    let pending = store.deliveries(p.id).await.unwrap().remove(0);
    assert_eq!(
        (pending.state, pending.attempts),
        (DeliveryState::Pending, 1)
    );
    store
        .finish_delivery(
            p.id,
            &d[0].recipient,
            &DeliveryOutcome::Sent("250 OK".into()),
            now(),
        )
        .await
        .unwrap();
    assert!(store.claim_delivery(&d[1], now()).await.unwrap());
    let failed = DeliveryOutcome::Failed {
        reply: "451 try later".into(),
        permanent: false,
    };
    store
        .finish_delivery(p.id, &d[1].recipient, &failed, now())
        .await
        .unwrap();
    let d = store.deliveries(p.id).await.unwrap();
    assert_eq!(
        (d[0].state, d[0].reply.as_deref()),
        (DeliveryState::Sent, Some("250 OK"))
    );
    assert_eq!((d[1].state, d[1].permanent), (DeliveryState::Failed, false));
    // A failed delivery is claimed again from its own state.
    assert!(store.claim_delivery(&d[1], now()).await.unwrap());
    let gone = DeliveryOutcome::Failed {
        reply: "550 no such user".into(),
        permanent: true,
    };
    store
        .finish_delivery(p.id, &d[1].recipient, &gone, now())
        .await
        .unwrap();
    assert_eq!(store.open_digest_periods().await.unwrap().len(), 1);
    store.close_digest_period(p.id).await.unwrap();
    assert!(store.open_digest_periods().await.unwrap().is_empty());
    assert_eq!(
        store.digest_periods(5).await.unwrap()[0].status,
        PeriodStatus::Done
    );
    // A period without recipients is recorded as skipped.
    let (skipped, _) = store
        .create_digest_period(days_ago(0), now() + TimeDelta::days(7), 0, &[], now())
        .await
        .unwrap();
    assert_eq!(skipped.status, PeriodStatus::Skipped);
    let periods = store.digest_periods(5).await.unwrap();
    assert_eq!(
        periods.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![skipped.id, p.id],
        "newest first"
    );
    store.close().await;
}

async fn periods_are_per_digest_with_topics_skips_issues_and_suppressions(db: &impl TestDb) {
    use gazette::model::{NewDelivery, NewIssue, NewPeriod};
    let store = db.open().await;
    let delivery = |who: &str, topics: &[&str], state: DeliveryState| NewDelivery {
        recipient: who.to_string(),
        message_id: format!("<{who}>"),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        state,
        reply: (state == DeliveryState::Skipped).then(|| "no story on their topics".into()),
    };
    let period = |digest: &str, deliveries: Vec<NewDelivery>, slug: Option<&str>| NewPeriod {
        digest: digest.into(),
        start: days_ago(7),
        cutoff: days_ago(0),
        stories: 2,
        deliveries,
        issue: slug.map(|s| NewIssue {
            slug: s.into(),
            subject: format!("{digest} issue"),
            html: format!("<p>{digest}</p>"),
        }),
        now: now(),
    };
    // Two digests may close a period at the same time.
    let (china, created) = store
        .record_period(&period(
            "china",
            vec![
                delivery("a@example.org", &[], DeliveryState::Queued),
                delivery(
                    "c@example.org",
                    &["lawyers", "china"],
                    DeliveryState::Queued,
                ),
                delivery("d@example.org", &["climate"], DeliveryState::Skipped),
            ],
            Some("2026-11-23-0800"),
        ))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (china.digest.as_str(), china.status),
        ("china", PeriodStatus::Open)
    );
    let (board, created) = store
        .record_period(&period(
            "board",
            vec![delivery(
                "d@example.org",
                &["climate"],
                DeliveryState::Skipped,
            )],
            None,
        ))
        .await
        .unwrap();
    assert!(created, "another digest's period with the same cutoff");
    assert_eq!(board.status, PeriodStatus::Skipped, "nobody queued");
    let (again, created) = store
        .record_period(&period("china", vec![], None))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, china.id);
    let d = store.deliveries(china.id).await.unwrap();
    assert_eq!(d[1].topics, ["lawyers", "china"]);
    assert!(d[0].topics.is_empty());
    assert_eq!(
        (d[2].state, d[2].reply.as_deref()),
        (DeliveryState::Skipped, Some("no story on their topics"))
    );
    assert_eq!(
        store.periods(Some("board"), 5).await.unwrap()[0].id,
        board.id
    );
    assert_eq!(store.periods(None, 5).await.unwrap().len(), 2);
    let open = store.open_periods(Some("china")).await.unwrap();
    assert_eq!(open.len(), 1);
    assert!(store.open_periods(Some("board")).await.unwrap().is_empty());
    // A reader who left meanwhile is skipped, by compare-and-set.
    assert!(
        store
            .skip_delivery(&d[0], "unsubscribed", now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .skip_delivery(&d[0], "unsubscribed", now())
            .await
            .unwrap()
    );
    assert_eq!(
        store.deliveries(china.id).await.unwrap()[0].state,
        DeliveryState::Skipped
    );

    // The archive: the issue and its period.
    let issues = store.issues(None, 10, false).await.unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        (
            issues[0].slug.as_str(),
            issues[0].html.as_deref(),
            issues[0].stories
        ),
        ("2026-11-23-0800", None, 2)
    );
    let issue = store
        .issue("china", "2026-11-23-0800")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(issue.html.as_deref(), Some("<p>china</p>"));
    assert_eq!((issue.cutoff, issue.period_id), (days_ago(0), china.id));
    assert!(
        store
            .issue("board", "2026-11-23-0800")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .issues(Some("board"), 10, true)
            .await
            .unwrap()
            .is_empty()
    );

    // Suppressions: per digest, case-insensitive, the first time kept.
    assert!(
        store
            .suppress("china", "A@Example.org", "one-click", now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .suppress("china", "a@example.org", "web", now())
            .await
            .unwrap()
    );
    let left = store.suppressions(None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (
            left[0].digest.as_str(),
            left[0].recipient.as_str(),
            left[0].how.as_str()
        ),
        ("china", "a@example.org", "one-click")
    );
    assert!(store.suppressions(Some("board")).await.unwrap().is_empty());
    assert!(store.unsuppress("china", "A@EXAMPLE.ORG").await.unwrap());
    assert!(!store.unsuppress("china", "a@example.org").await.unwrap());

    // One unsubscribe key for every handle on the store.
    let key = store.unsubscribe_key("first").await.unwrap();
    assert_eq!(key, "first");
    let other = db.open().await;
    assert_eq!(other.unsubscribe_key("second").await.unwrap(), "first");
    other.close().await;
    store.close().await;
}

async fn one_digest_sender_at_a_time(db: &impl TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let held = a.lock_digest_sender().await.unwrap();
    assert!(matches!(
        b.lock_digest_sender().await,
        Err(StoreError::SenderBusy)
    ));
    drop(held);
    let again = b.lock_digest_sender().await.unwrap();
    drop(again);
    a.close().await;
    b.close().await;
}

async fn two_handles_writing_alternately_see_each_others_stories(db: &impl TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let f = feeds(&a, &["one", "two", "three", "four"]).await;
    // Each handle writes once so that both hold a near-duplicate index.
    file(
        &a,
        f["four"],
        vec![item(
            "x",
            "Unrelated warm-up story",
            "Nothing to see here at all today.",
            None,
            days_ago(2),
        )],
        now(),
    )
    .await;
    file(
        &b,
        f["four"],
        vec![item(
            "y",
            "Another warm-up story",
            "Still nothing to see here at all.",
            None,
            days_ago(2),
        )],
        now(),
    )
    .await;
    file(
        &a,
        f["one"],
        vec![item("1", VOTE, VOTE_TEXT, None, days_ago(2))],
        now(),
    )
    .await;
    file(
        &b,
        f["two"],
        vec![item("2", VOTE_EDITED, VOTE_TEXT, None, days_ago(2))],
        now(),
    )
    .await;
    file(
        &a,
        f["three"],
        vec![item("3", VOTE, VOTE_TEXT, None, days_ago(1))],
        now(),
    )
    .await;
    let all = stories(&a).await;
    let vote = all
        .iter()
        .find(|s| s.iter().any(|(f, _)| f == "one"))
        .unwrap();
    assert_eq!(
        vote,
        &pairs(&[
            ("one", "primary"),
            ("two", "near duplicate"),
            ("three", "near duplicate")
        ]),
        "{all:?}"
    );
    assert_eq!(all.len(), 3);
    a.close().await;
    b.close().await;
}

async fn a_due_feed_is_leased_by_one_owner_and_taken_over_when_its_lease_expires(db: &impl TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let f = feeds(&a, &["one", "two"]).await;
    let ids = vec![f["one"], f["two"]];
    let t = |s: i64| now() + TimeDelta::seconds(s);
    // Never fetched: due now. A takes both; B gets neither, told until when.
    let got = a.lease_feeds(&ids, "A", t(0), t(45)).await.unwrap();
    assert_eq!(got.leased.len(), 2);
    assert_eq!(got.taken_over, 0);
    let other = b.lease_feeds(&ids, "B", t(1), t(46)).await.unwrap();
    assert!(other.leased.is_empty());
    assert_eq!(other.elsewhere.len(), 2);
    assert!(
        other
            .elsewhere
            .iter()
            .all(|(_, until)| *until == Some(t(45)))
    );
    // A finishes `one`: its state and next due time go in, its lease goes.
    let done = FetchState {
        status: FetchStatus::Ok,
        last_fetch_at: Some(t(2)),
        due_at: Some(t(3600)),
        ..FetchState::default()
    };
    a.save_fetch_states(&[(f["one"], done.clone())], Some("A"))
        .await
        .unwrap();
    let later = b
        .lease_feeds(&[f["one"]], "B", t(60), t(105))
        .await
        .unwrap();
    assert!(later.leased.is_empty(), "fetched by A: due in an hour");
    assert_eq!(later.elsewhere[0].0.state.due_at, Some(t(3600)));
    assert_eq!(later.elsewhere[0].1, None, "no lease held");
    // A died holding `two`: once its lease ends, B takes it over.
    let took = b.lease_feeds(&[f["two"]], "B", t(50), t(95)).await.unwrap();
    assert_eq!((took.leased.len(), took.taken_over), (1, 1));
    // A's late state for `two` is dropped: B holds it now.
    let stale = FetchState {
        etag: Some("\"stale\"".into()),
        ..done.clone()
    };
    a.save_fetch_states(&[(f["two"], stale)], Some("A"))
        .await
        .unwrap();
    let two = a
        .feeds()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == f["two"])
        .unwrap();
    assert_eq!(two.state.etag, None);
    // Due an hour later, B leases `one` again.
    let again = b
        .lease_feeds(&[f["one"]], "B", t(3601), t(3646))
        .await
        .unwrap();
    assert_eq!((again.leased.len(), again.taken_over), (1, 0));
    assert_eq!(again.leased[0].state, done);
    a.close().await;
    b.close().await;
}
