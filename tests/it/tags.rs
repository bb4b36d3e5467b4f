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
    let store = gazette::app::open_store(&config).await.unwrap();
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
