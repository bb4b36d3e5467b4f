//! One story per event: syndicated copies, GUID changes, near duplicates.

use gazette::model::Story;

use crate::server::{FeedServer, Route};
use crate::{Workspace, by_title};

/// One RSS item: guid, title, link, RFC 822 date, description.
type It<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

fn rss(items: &[It]) -> String {
    let mut s = String::from(
        "<rss version=\"2.0\"><channel><title>f</title><link>https://f.example/</link>",
    );
    for (guid, title, link, date, desc) in items {
        s.push_str(&format!(
            "<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title><link>{link}</link><pubDate>{date}</pubDate><description>{desc}</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s
}

const VOTE_TEXT: &str = "On Thursday, a majority of States at the UN General Assembly's Third Committee voted in favour of the first country resolution on Russia, asking the Secretary-General to report on the arbitrary detention of anti-war protesters and lawyers.";

fn reasons(s: &Story) -> Vec<(&str, &str)> {
    s.sources
        .iter()
        .map(|x| (x.feed.as_str(), x.reason.as_str()))
        .collect()
}

#[tokio::test]
async fn a_story_syndicated_by_three_feeds_is_one_story_with_three_sources() {
    let server = FeedServer::start().await;
    let link = "https://www.ohchr.org/en/press-releases/2026/11/russia-vote";
    server.set(
        "ohchr",
        Route::feed(
            rss(&[(
                "tag:ohchr,1",
                "States vote to scrutinise Russia's record",
                &format!("{link}?utm_source=ohchr&amp;utm_medium=rss"),
                "Thu, 12 Nov 2026 16:05:00 +0100",
                VOTE_TEXT,
            )]),
            "application/rss+xml",
        ),
    );
    server.set(
        "ishr",
        Route::feed(
            rss(&[(
                "https://ishr.ch/?p=48290",
                "UN vote on Russia: a first",
                &format!("{link}?utm_source=rss&amp;utm_medium=feed"),
                "Thu, 12 Nov 2026 18:40:00 +0100",
                "ISHR welcomes the vote.",
            )]),
            "application/rss+xml",
        ),
    );
    server.set(
        "fld",
        Route::feed(
            rss(&[(
                "fld-2026-11-13",
                "States vote to scrutinise Russia",
                "http://ohchr.org/en/press-releases/2026/11/russia-vote/?fbclid=IwAR2Zq8#main",
                "Fri, 13 Nov 2026 09:15:00 GMT",
                "Front Line Defenders shares the news.",
            )]),
            "application/rss+xml",
        ),
    );
    let ws = Workspace::new();
    let config = ws.write_config(
        &[
            ("FLD", server.url("fld")),
            ("ISHR", server.url("ishr")),
            ("OHCHR", server.url("ohchr")),
        ],
        "",
    );
    ws.poll(&config).await;
    let stories = ws.items(&config).await;
    assert_eq!(stories.len(), 1, "{stories:#?}");
    let s = &stories[0];
    // The earliest item is the primary, whatever order the feeds were polled in.
    assert_eq!(s.title, "States vote to scrutinise Russia's record");
    assert_eq!(
        reasons(s),
        vec![
            ("OHCHR", "primary"),
            ("ISHR", "same link"),
            ("FLD", "same link")
        ]
    );
    assert_eq!(s.published.to_rfc3339(), "2026-11-12T15:05:00+00:00");
}

#[tokio::test]
async fn a_guid_change_on_repoll_is_the_same_item_and_an_edit_updates_it() {
    let server = FeedServer::start().await;
    let item = |guid: &str, title: &str| {
        rss(&[(
            guid,
            title,
            "https://ishr.ch/news/yu-wensheng",
            "Mon, 09 Nov 2026 10:00:00 GMT",
            "Lawyer Yu Wensheng was sentenced to four years in prison for inciting subversion.",
        )])
    };
    server.set(
        "f",
        Route::feed(
            item("https://ishr.ch/?p=1", "Lawyer Yu Wensheng sentenced"),
            "application/rss+xml",
        ),
    );
    let ws = Workspace::new();
    let config = ws.write_config(&[("ISHR", server.url("f"))], "");
    ws.poll(&config).await;
    // The CMS migration changes every guid.
    server.set(
        "f",
        Route::feed(
            item("ishr-node-981", "Lawyer Yu Wensheng sentenced"),
            "application/rss+xml",
        ),
    );
    let r = ws.poll(&config).await;
    assert_eq!(r[0].new, 0, "the guid is updated in place: {r:?}");
    // An edit after the migration updates the same item in place.
    server.set(
        "f",
        Route::feed(
            item(
                "ishr-node-981",
                "Lawyer Yu Wensheng sentenced to four years",
            ),
            "application/rss+xml",
        ),
    );
    let r = ws.poll(&config).await;
    assert_eq!((r[0].new, r[0].updated), (0, 1), "{r:?}");
    let stories = ws.items(&config).await;
    assert_eq!(stories.len(), 1);
    assert_eq!(
        stories[0].title,
        "Lawyer Yu Wensheng sentenced to four years"
    );
    assert_eq!(stories[0].sources.len(), 1);
}

#[tokio::test]
async fn many_items_linking_to_one_page_stay_apart_within_a_feed() {
    let server = FeedServer::start().await;
    let home = "https://news.example.org/";
    server.set(
        "f",
        Route::feed(
            rss(&[
                (
                    "a",
                    "Hong Kong: Chow Hang-tung sentenced",
                    home,
                    "Mon, 09 Nov 2026 10:00:00 GMT",
                    "Chow Hang-tung was sentenced.",
                ),
                (
                    "b",
                    "Russia suspended from the Human Rights Council",
                    home,
                    "Mon, 09 Nov 2026 11:00:00 GMT",
                    "A two-thirds majority voted.",
                ),
            ]),
            "application/rss+xml",
        ),
    );
    let ws = Workspace::new();
    let config = ws.write_config(&[("Homepage links", server.url("f"))], "");
    let r = ws.poll(&config).await;
    assert_eq!(r[0].new, 2);
    // Same link within one feed is not one story: two stories.
    assert_eq!(ws.items(&config).await.len(), 2);
}

#[tokio::test]
async fn a_near_duplicate_with_edited_punctuation_and_another_url_is_merged() {
    let server = FeedServer::start().await;
    server.set(
        "ishr",
        Route::feed(
            rss(&[(
                "i1",
                "States at UN General Assembly vote to scrutinise Russia's human rights record",
                "https://ishr.ch/news/russia-vote",
                "Thu, 12 Nov 2026 17:40:00 GMT",
                VOTE_TEXT,
            )]),
            "application/rss+xml",
        ),
    );
    let edited = VOTE_TEXT
        .replace("On Thursday, a", "On Thursday a")
        .replace("favour", "favor")
        .replace("'s", "’s")
        .replace(", asking", " – asking");
    server.set("fld", Route::feed(rss(&[("f1", "States at UN General Assembly vote to scrutinise Russia’s human rights record | FLD", "https://www.frontlinedefenders.org/en/statement/russia-un-vote", "Fri, 13 Nov 2026 09:15:00 GMT", &edited)]), "application/rss+xml"));
    let ws = Workspace::new();
    let config = ws.write_config(
        &[("ISHR", server.url("ishr")), ("FLD", server.url("fld"))],
        "",
    );
    ws.poll(&config).await;
    let stories = ws.items(&config).await;
    assert_eq!(stories.len(), 1, "{stories:#?}");
    let fld = &stories[0].sources[1];
    assert_eq!(
        (fld.feed.as_str(), fld.reason.as_str()),
        ("FLD", "near duplicate")
    );
    assert!(fld.score.unwrap() >= 0.5, "{fld:?}");
}

#[tokio::test]
async fn different_stories_on_the_same_topic_are_not_merged() {
    let server = FeedServer::start().await;
    server.set("ishr", Route::feed(rss(&[("i1", "UN General Assembly committee adopts resolution on death penalty moratorium", "https://ishr.ch/news/moratorium", "Thu, 19 Nov 2026 18:30:00 GMT", "The Third Committee adopted its biennial resolution calling for a moratorium on the use of the death penalty, with a record 131 States voting in favour.")]), "application/rss+xml"));
    server.set("hrw", Route::feed(rss(&[("h1", "UN General Assembly committee adopts resolution on extrajudicial executions", "https://hrw.org/news/executions", "Fri, 20 Nov 2026 01:10:00 GMT", "The Third Committee adopted its resolution on extrajudicial, summary or arbitrary executions after rejecting an amendment to remove the reference to sexual orientation and gender identity.")]), "application/rss+xml"));
    let ws = Workspace::new();
    let config = ws.write_config(
        &[("ISHR", server.url("ishr")), ("HRW", server.url("hrw"))],
        "",
    );
    ws.poll(&config).await;
    let stories = ws.items(&config).await;
    assert_eq!(stories.len(), 2, "{stories:#?}");
    for s in &stories {
        assert_eq!(s.sources.len(), 1);
    }
}

#[tokio::test]
async fn near_duplicates_outside_the_window_stay_apart_and_priority_picks_the_primary() {
    let server = FeedServer::start().await;
    let text = "UN experts today called for the immediate release of human rights lawyer Li Mei, detained incommunicado since March for defending Falun Gong practitioners and petitioners.";
    server.set(
        "a",
        Route::feed(
            rss(&[(
                "a1",
                "UN experts urge release of lawyer Li Mei",
                "https://a.example/li-mei",
                "Mon, 02 Nov 2026 10:00:00 GMT",
                text,
            )]),
            "application/rss+xml",
        ),
    );
    server.set(
        "b",
        Route::feed(
            rss(&[(
                "b1",
                "UN experts urge release of lawyer Li Mei",
                "https://b.example/li-mei",
                "Mon, 23 Nov 2026 10:00:00 GMT",
                text,
            )]),
            "application/rss+xml",
        ),
    );
    server.set(
        "c",
        Route::feed(
            rss(&[(
                "c1",
                "UN experts urge the release of lawyer Li Mei",
                "https://c.example/li-mei",
                "Mon, 23 Nov 2026 12:00:00 GMT",
                text,
            )]),
            "application/rss+xml",
        ),
    );
    let ws = Workspace::new();
    let mut feeds = vec![("Early", server.url("a")), ("Later", server.url("b"))];
    feeds.push(("Preferred", server.url("c")));
    let config = ws.write_config(&feeds, "[dedup]\nwindow = \"7d\"\n");
    // Give the third feed a priority.
    let text_cfg = std::fs::read_to_string(ws.config_path()).unwrap().replace(
        &format!("url = \"{}\"\n", server.url("c")),
        &format!("url = \"{}\"\npriority = 10\n", server.url("c")),
    );
    std::fs::write(ws.config_path(), text_cfg).unwrap();
    let config = gazette::config::Config::load(&ws.config_path()).unwrap_or(config);
    assert_eq!(config.feeds[2].priority, 10);
    ws.poll(&config).await;
    let stories = ws.items(&config).await;
    assert_eq!(stories.len(), 2, "three weeks apart: two stories");
    let recent = by_title(&stories, "UN experts urge the release of lawyer Li Mei");
    assert_eq!(
        reasons(recent),
        vec![("Preferred", "primary"), ("Later", "near duplicate")]
    );
}

/// A store handle that stays open (a daemon) keeps its near-duplicate index
/// in memory: it must see stories another handle (a CLI poll) stored since,
/// and find old stories too: two copies within the window of each other are
/// one story however long ago that was.
#[tokio::test]
async fn the_band_index_sees_another_handles_stories_and_old_ones_too() {
    let server = FeedServer::start().await;
    let recent = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc2822();
    let old = (chrono::Utc::now() - chrono::Duration::days(60)).to_rfc2822();
    const TRIAL_TEXT: &str = "The trial of the human rights lawyer opened in Beijing on Monday behind closed doors, and diplomats who asked to attend were turned away by the court police.";
    let feed = |site: &str, vote_title: &str, trial_title: &str| {
        rss(&[
            (
                &format!("{site}-1"),
                vote_title,
                &format!("https://{site}.example/vote"),
                &recent,
                VOTE_TEXT,
            ),
            (
                &format!("{site}-2"),
                trial_title,
                &format!("https://{site}.example/trial"),
                &old,
                TRIAL_TEXT,
            ),
        ])
    };
    server.set(
        "x",
        Route::feed(
            rss(&[(
                "x-1",
                "Death penalty moratorium adopted",
                "https://x.example/1",
                &recent,
                "The Third Committee adopted its resolution on a moratorium on the death penalty.",
            )]),
            "application/rss+xml",
        ),
    );
    server.set(
        "a",
        Route::feed(
            feed(
                "a",
                "States vote to scrutinise Russia's record",
                "Trial of a lawyer opens in Beijing",
            ),
            "application/rss+xml",
        ),
    );
    server.set(
        "b",
        Route::feed(
            feed(
                "b",
                "States vote to scrutinise Russia’s record | B",
                "Trial of a lawyer opens in Beijing | B",
            ),
            "application/rss+xml",
        ),
    );
    let ws = Workspace::new();
    let only = |name: &str, route: &str| ws.write_config(&[(name, server.url(route))], "");
    // The daemon's handle writes once: its index is built.
    let daemon_config = std::sync::Arc::new(only("X", "x"));
    let daemon = crate::open_store(&daemon_config).await.unwrap();
    let poll = |config: std::sync::Arc<gazette::config::Config>, store: gazette::store::Store| async move {
        let ingest = gazette::app::ingest(config, store).unwrap();
        gazette::app::poll(&ingest, gazette::pipeline::Waits::ServerRequested, &|_| {})
            .await
            .unwrap()
    };
    poll(daemon_config.clone(), daemon.clone()).await;
    // Another process stores A's two stories.
    ws.poll(&only("A", "a")).await;
    // The daemon then stores B's copies.
    poll(std::sync::Arc::new(only("B", "b")), daemon.clone()).await;
    daemon.close().await;
    let stories = ws.items(&only("B", "b")).await;
    let vote = by_title(&stories, "States vote to scrutinise Russia's record");
    assert_eq!(
        reasons(vote),
        vec![("A", "primary"), ("B", "near duplicate")],
        "{stories:#?}"
    );
    // Sixty days old, but within the window of each other: one story.
    let trial = by_title(&stories, "Trial of a lawyer opens in Beijing");
    assert_eq!(
        reasons(trial),
        vec![("A", "primary"), ("B", "near duplicate")],
        "{stories:#?}"
    );
    assert_eq!(stories.len(), 3, "{stories:#?}");
}

#[tokio::test]
async fn two_items_sharing_a_link_and_title_are_not_taken_for_a_rename() {
    let server = FeedServer::start().await;
    let link = "https://ishr.example/press-briefing";
    let date = "Mon, 16 Nov 2026 09:00:00 GMT";
    let one = rss(&[(
        "g1",
        "Press briefing",
        link,
        date,
        "Notes on the Council session.",
    )]);
    server.set("f", Route::feed(one, "application/rss+xml"));
    let ws = Workspace::new();
    let config = ws.write_config(&[("ISHR", server.url("f"))], "");
    ws.poll(&config).await;
    // A second briefing with the same title and link, the first still listed.
    let both = rss(&[
        (
            "g2",
            "Press briefing",
            link,
            date,
            "Notes on the Council session.",
        ),
        (
            "g1",
            "Press briefing",
            link,
            date,
            "Notes on the Council session.",
        ),
    ]);
    server.set("f", Route::feed(both, "application/rss+xml"));
    let reports = ws.poll(&config).await;
    assert_eq!((reports[0].new, reports[0].updated), (1, 0), "{reports:?}");
    // Polled again: nothing swaps back and forth.
    let reports = ws.poll(&config).await;
    assert_eq!((reports[0].new, reports[0].updated), (0, 0), "{reports:?}");
    let stories = ws.items(&config).await;
    let guids: Vec<_> = stories.iter().filter_map(|s| s.guid.clone()).collect();
    assert_eq!(guids.len(), 2, "{guids:?}");
}

/// A story the retention deleted stays in the band index of a running
/// daemon until the index is rebuilt: a later near duplicate must not be
/// filed into it.
#[tokio::test]
async fn a_pruned_story_left_in_the_band_index_is_not_merged_into() {
    let server = FeedServer::start().await;
    let three_days = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc2822();
    let one_day = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc2822();
    server.set(
        "a",
        Route::feed(
            rss(&[
                (
                    "a-1",
                    "States vote to scrutinise Russia's record",
                    "https://a.example/vote",
                    &three_days,
                    VOTE_TEXT,
                ),
                (
                    "a-2",
                    "Death penalty moratorium adopted",
                    "https://a.example/moratorium",
                    &one_day,
                    "The Third Committee adopted its resolution on a moratorium on the death penalty.",
                ),
            ]),
            "application/rss+xml",
        ),
    );
    server.set(
        "b",
        Route::feed(
            rss(&[(
                "b-1",
                "States vote to scrutinise Russia’s record | B",
                "https://b.example/vote",
                &three_days,
                VOTE_TEXT,
            )]),
            "application/rss+xml",
        ),
    );
    let ws = Workspace::new();
    let daemon = crate::open_store(&ws.write_config(&[], "")).await.unwrap();
    let poll = |name: &str, route: &str| {
        let config = std::sync::Arc::new(ws.write_config(&[(name, server.url(route))], ""));
        let store = daemon.clone();
        async move {
            let ingest = gazette::app::ingest(config, store).unwrap();
            gazette::app::poll(&ingest, gazette::pipeline::Waits::ServerRequested, &|_| {})
                .await
                .unwrap()
        }
    };
    poll("A", "a").await;
    let two_days_ago = chrono::Utc::now() - chrono::TimeDelta::days(2);
    let far = chrono::Utc::now() + chrono::TimeDelta::seconds(60);
    assert_eq!(daemon.prune_stories(two_days_ago, far).await.unwrap(), 1);
    poll("B", "b").await;
    daemon.close().await;
    let stories = ws.items(&ws.write_config(&[], "")).await;
    assert_eq!(stories.len(), 2, "{stories:#?}");
    let vote = by_title(&stories, "States vote to scrutinise Russia’s record | B");
    assert_eq!(reasons(vote), vec![("B", "primary")]);
}
