//! Integration tests: real HTTP on loopback, a real SQLite file, the real binary.

mod cli;
mod contract;
mod daemon;
mod dedup;
mod digest;
mod digests;
mod fastparse;
mod ingest;
mod postgres;
mod publish;
mod realworld;
mod serve;
mod server;
mod smtp;
mod tags;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gazette::app::Application;
use gazette::config::Config;
use gazette::model::{ItemQuery, Story};
use gazette::pipeline::{FeedReport, Waits};
use gazette::store::Store;

/// A fixture file from `tests/fixtures`.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// A test workspace: a temporary folder with a feeds.toml and a database.
#[derive(Default)]
pub struct Workspace {
    pub dir: TempDirDefault,
}

/// A temporary folder removed on drop.
pub struct TempDirDefault(tempfile::TempDir);

impl Default for TempDirDefault {
    fn default() -> Self {
        TempDirDefault(tempfile::tempdir().unwrap())
    }
}

impl TempDirDefault {
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace::default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("feeds.toml")
    }

    /// Writes a feeds.toml with `feeds` as (name, url) and `extra` top-level settings.
    pub fn write_config(&self, feeds: &[(&str, String)], extra: &str) -> Config {
        let mut text = format!(
            "title = \"Test Watch\"\nsite_url = \"https://news.example.org/\"\ndatabase = \"sqlite://gazette.db\"\n{extra}\n"
        );
        for (name, url) in feeds {
            text.push_str(&format!(
                "\n[[feeds]]\nname = \"{name}\"\nurl = \"{url}\"\n"
            ));
        }
        std::fs::write(self.config_path(), &text).unwrap();
        Config::load(&self.config_path()).unwrap()
    }

    /// Polls once through the library, as `gazette poll` does.
    pub async fn poll(&self, config: &Config) -> Vec<FeedReport> {
        let config = Arc::new(config.clone());
        let app = Application::build(config.as_ref().clone()).await.unwrap();
        let reports = app.poll(Waits::ServerRequested, &|_| {}).await.unwrap();
        app.close().await;
        reports
    }

    pub async fn items(&self, config: &Config) -> Vec<Story> {
        let store = open_store(config).await.unwrap();
        let items = store.list_stories(&ItemQuery::default()).await.unwrap();
        store.close().await;
        items
    }
}

/// Opens the configured store, as the application does.
pub async fn open_store(config: &Config) -> Result<Store, gazette::store::StoreError> {
    Store::open(&config.database).await
}

/// Runs the real `gazette` binary on the workspace's configuration.
pub fn gazette(ws: &Workspace, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("--config")
        .arg(ws.config_path())
        .args(args)
        .output()
        .unwrap()
}

/// The report for feed `name`.
pub fn report<'a>(reports: &'a [FeedReport], name: &str) -> &'a FeedReport {
    reports
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no report for {name}"))
}

/// The stored item with this title.
pub fn by_title<'a>(items: &'a [Story], title: &str) -> &'a Story {
    items.iter().find(|i| i.title == title).unwrap_or_else(|| {
        panic!(
            "no item titled {title:?} among {:#?}",
            items.iter().map(|i| &i.title).collect::<Vec<_>>()
        )
    })
}
