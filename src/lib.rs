//! gazette: a self-hosted news aggregator and newsletter builder.
//!
//! Data flows one way through modules that each own one step:
//!
//! ```text
//! feeds.toml ─ config ─▶ scheduler ─▶ fetch ─▶ parse (+ sanitize) ─▶ tag ─▶ filing ─▶ store
//!                                       └──────────────── pipeline ────────────────┘
//! store ─▶ publish (Atom, RSS, JSON, HTML, OPML) ─▶ serve (HTTP)
//! store ─▶ digest ─▶ delivery ─▶ mail
//! store ─▶ archive (past digest issues) ─▶ serve, publish; unsubscribe (tokens) ─▶ serve
//! ```
//!
//! [`pipeline`] is the only module that sees every ingest step; the others
//! talk through the plain types in [`model`]. Decisions are plain code
//! ([`filing`]: which story an item joins; [`scheduler`]: when a feed is
//! due); [`store`] only reads and writes, behind one contract
//! ([`store::Backend`]). [`app::Application`] builds everything once for
//! the CLI, the daemon and the tests. `docs/ARCHITECTURE.md` has the map.

pub mod app;
pub mod archive;
pub mod config;
pub mod daemon;
pub mod dedup;
pub mod delivery;
pub mod digest;
pub mod fetch;
pub mod filing;
pub mod mail;
pub mod metrics;
pub mod model;
pub mod opml;
pub mod parse;
pub mod pipeline;
pub mod publish;
pub mod sanitize;
pub mod scheduler;
pub mod serve;
pub mod store;
pub mod tag;
pub mod unsubscribe;
