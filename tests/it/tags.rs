//! Tag rules, category mapping, exclusions and re-tagging without refetching.

use gazette::config::Config;
use gazette::model::ItemQuery;

use crate::server::{FeedServer, Route};
use crate::{Workspace, by_title, gazette};

const FEED: &str = r#"<rss version="2.0"><channel><title>t</title><link>https://ishr.example/</link>
<item><guid>1</guid><title>China's lawyers: a new series</title><link>https://ishr.example/1</link><description>Profiles of defenders.</description></item>
<item><guid>2</guid><title>Chinatown street festival</title><link>https://ishr.example/2</link><description>Food and music.</description></item>
<item><guid>3</guid><title>Pride march banned again</title><link>https://ishr.example/3</link><category>LGBTI</category><description>Police banned the march.</description></item>
<item><guid>4</guid><title>Sponsored: compliance webinar</title><link>https://ishr.example/4</link><description>Register now, China edition.</description></item>
</channel></rss>"#;

const RULES: &str = r#"
[[tags]]
name = "china"
keywords = ["China"]
fields = ["title"]

[[tags]]
name = "sogie"
categories = ["lgbti"]

[[exclude]]
keywords = ["sponsored"]
fields = ["title"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn rules_tag_map_categories_exclude_and_retag_without_refetching() {
    let server = FeedServer::start().await;
    server.set(
        "f",
        Route::feed(FEED, "application/rss+xml")
            .with_validators("\"v1\"", "Mon, 23 Nov 2026 08:00:00 GMT"),
    );
    let ws = Workspace::new();
    ws.write_config(&[("ISHR", server.url("f"))], "");
    let path = ws.config_path();
    std::fs::write(
        &path,
        format!("{}{RULES}", std::fs::read_to_string(&path).unwrap()),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    ws.poll(&config).await;

    let stories = ws.items(&config).await;
    assert_eq!(stories.len(), 3, "the sponsored story is left out");
    assert_eq!(
        by_title(&stories, "China's lawyers: a new series").tags,
        vec!["china"]
    );
    assert!(
        by_title(&stories, "Chinatown street festival")
            .tags
            .is_empty()
    );
    assert_eq!(
        by_title(&stories, "Pride march banned again").tags,
        vec!["sogie"]
    );
    let store = crate::open_store(&config).await.unwrap();
    let all = store
        .list_stories(&ItemQuery {
            include_excluded: true,
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await;
    assert_eq!(all.len(), 4, "excluded, not deleted");

    // A new rule: the next poll re-tags stored stories although the feed answers 304.
    let text = std::fs::read_to_string(&path).unwrap()
        + "\n[[tags]]\nname = \"lawyers\"\nkeywords = [\"lawyer\", \"lawyers\"]\n";
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let reports = ws.poll(&config).await;
    assert_eq!(
        reports[0].status,
        gazette::pipeline::FeedStatus::NotModified
    );
    let stories = ws.items(&config).await;
    assert_eq!(
        by_title(&stories, "China's lawyers: a new series").tags,
        vec!["china", "lawyers"]
    );

    // `gazette retag` does the same on demand; nothing left to change now.
    let out = tokio::task::block_in_place(|| gazette(&ws, &["retag"]));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "re-tagged: 0 items changed"
    );
    assert_eq!(server.requests("f").len(), 2, "re-tagging fetched nothing");
}

/// Titles of the stories listed under `tag`, newest first.
async fn tagged(config: &Config, tag: &str) -> Vec<String> {
    let store = crate::open_store(config).await.unwrap();
    let stories = store
        .list_stories(&ItemQuery {
            tag: Some(tag.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await;
    stories.into_iter().map(|s| s.title).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_listings_follow_retagging_exclusion_and_merged_items() {
    let server = FeedServer::start().await;
    server.set("f", Route::feed(FEED, "application/rss+xml"));
    let ws = Workspace::new();
    ws.write_config(&[("ISHR", server.url("f"))], "");
    let path = ws.config_path();
    let base = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{base}{RULES}")).unwrap();
    let config = Config::load(&path).unwrap();
    ws.poll(&config).await;
    assert_eq!(
        tagged(&config, "china").await,
        ["China's lawyers: a new series"]
    );
    assert_eq!(tagged(&config, "sogie").await, ["Pride march banned again"]);

    // The china rule now matches descriptions too: the excluded story still stays out.
    let rules = RULES.replace(
        "fields = [\"title\"]\n\n[[tags]]",
        "fields = [\"title\", \"summary\"]\n\n[[tags]]",
    );
    std::fs::write(&path, format!("{base}{rules}")).unwrap();
    let config = Config::load(&path).unwrap();
    gazette::app::retag(
        &gazette::app::ingest(
            std::sync::Arc::new(config.clone()),
            crate::open_store(&config).await.unwrap(),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        tagged(&config, "china").await,
        ["China's lawyers: a new series"]
    );

    // Rule removed: the story leaves the tag's listing.
    std::fs::write(
        &path,
        format!(
            "{base}{}",
            RULES.replace("keywords = [\"China\"]", "keywords = [\"Mongolia\"]")
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    ws.poll(&config).await;
    assert!(tagged(&config, "china").await.is_empty());

    // An item of another feed joins the Pride story and brings its feed's tag.
    server.set(
        "g",
        Route::feed(
            r#"<rss version="2.0"><channel><title>g</title><link>https://g.example/</link>
            <item><guid>g1</guid><title>Pride march banned again</title><link>https://ishr.example/3?utm_source=g</link><description>Police banned the march.</description></item>
            </channel></rss>"#,
            "application/rss+xml",
        ),
    );
    let text = std::fs::read_to_string(&path).unwrap()
        + &format!(
            "\n[[feeds]]\nname = \"G\"\nurl = \"{}\"\ntags = [\"partners\"]\n",
            server.url("g")
        );
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    ws.poll(&config).await;
    assert_eq!(
        tagged(&config, "partners").await,
        ["Pride march banned again"]
    );
    let stories = ws.items(&config).await;
    let pride = by_title(&stories, "Pride march banned again");
    assert_eq!(pride.sources.len(), 2);
    assert_eq!(pride.tags, ["partners", "sogie"]);
}
