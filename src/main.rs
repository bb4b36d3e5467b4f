//! The `gazette` command line: argument parsing, terminal output and exit
//! codes. The work itself is in the library.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use gazette::app::Application;
use gazette::config::Config;
use gazette::model::ItemQuery;
use gazette::pipeline::{FeedReport, Waits};
use indicatif::{ProgressBar, ProgressStyle};

/// gazette: polls news feeds, removes duplicates, tags stories, publishes
/// a combined feed and emails a digest.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "feeds.toml")]
    config: PathBuf,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log lines as human-readable text or as JSON objects.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: polls each feed on its interval, republishes when stories
    /// change, serves HTTP, sends the digest on schedule; reloads feeds.toml
    /// when it changes (or on SIGHUP); stops cleanly on SIGINT/SIGTERM.
    Run {
        /// Serve HTTP on this address instead of [http] listen (several instances on one host).
        #[arg(long, value_parser = listen_addr)]
        listen: Option<SocketAddr>,
    },
    /// Validate the configuration; errors are printed as file:line:col: message.
    Check,
    /// Fetch every feed once now and store new and changed stories.
    Poll {
        /// Also fetch feeds that asked to wait (Retry-After) or were marked gone.
        #[arg(long)]
        force: bool,
    },
    /// List stored stories, newest first.
    Items {
        /// Only stories with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only stories published since this date (2026-11-01, an RFC 3339 time, or an age such as 7d).
        #[arg(long)]
        since: Option<String>,
        /// At most this many stories.
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Also stories matched by an [[exclude]] rule.
        #[arg(long)]
        all: bool,
    },
    /// Re-compute every stored story's tags from the current rules (no fetching).
    Retag,
    /// Write feed.atom, feed.rss, feed.json, index.html, sources.opml and the
    /// per-tag feeds and pages into a folder.
    Publish {
        /// The folder (default: [publish] dir).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Serve the published feeds and pages over HTTP on [http] listen.
    Serve {
        /// Serve on this address instead of [http] listen.
        #[arg(long, value_parser = listen_addr)]
        listen: Option<SocketAddr>,
    },
    /// Move a feed list in and out of OPML 2.0.
    #[command(subcommand)]
    Opml(OpmlCommand),
    /// The store itself.
    #[command(subcommand)]
    Db(DbCommand),
    /// The email digest.
    Digest {
        #[command(subcommand)]
        command: DigestCommand,
    },
}

#[derive(Subcommand)]
enum OpmlCommand {
    /// Print the configured feeds as OPML 2.0.
    Export,
    /// Append the feeds of an OPML file that are not configured yet to the configuration file.
    Import {
        /// The OPML file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy the configured store into an empty one (SQLite <-> PostgreSQL),
    /// keeping story ids, item keys, fetch state and the digest ledger.
    Copy {
        /// The target: sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum DigestCommand {
    /// Send the digests whose period is due (and finish interrupted ones); a second call sends nothing.
    Send {
        /// Only this digest.
        #[arg(long)]
        digest: Option<String>,
    },
    /// List digest periods and each recipient's delivery state, per digest.
    Status {
        /// Only this digest.
        #[arg(long)]
        digest: Option<String>,
        /// At most this many periods per digest, newest first.
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
    /// Render the digest that would be sent now, without sending or recording anything.
    Preview {
        /// The digest (needed when several are configured).
        #[arg(long)]
        digest: Option<String>,
        /// As this recipient would get it (their topics, their unsubscribe link).
        #[arg(long)]
        to: Option<String>,
        /// Write it to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The plain-text version instead of the HTML.
        #[arg(long)]
        text: bool,
    },
    /// Who gets which digest, with which topics, and who unsubscribed.
    Subscribers {
        /// Only this digest.
        #[arg(long)]
        digest: Option<String>,
    },
    /// Undo an unsubscription: the address gets the digest again.
    Resubscribe {
        /// The digest.
        #[arg(long)]
        digest: String,
        /// The address.
        address: String,
    },
}

/// glibc gives each thread that allocates its own malloc arena (up to 8
/// per core) and keeps what the parsing and store threads free in them: on
/// a large poll that is as much memory again as the heap itself. Four
/// arenas keep the resident size near the heap's; two made the threads
/// queue on the arena locks (2,000 feeds: 18.5 -> 15.8 s of CPU, 40% fewer
/// context switches, peak RSS 127–129 -> 129–132 MB).
/// `MALLOC_ARENA_MAX` in the environment, read by glibc itself, wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 4);
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // The daemon reports what it does; one-shot commands only warnings.
    let base = if matches!(cli.command, Command::Run { .. }) {
        1
    } else {
        0
    };
    init_tracing(cli.verbose + base, cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // `gazette items | head` closes the pipe early: not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GAZETTE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Loads the configuration, printing every error and warning as
/// `file:line:col: message`, in line order.
fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    let config = Config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    for w in &config.warnings {
        eprintln!("{w}");
    }
    Ok(config)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = match load_config(&cli.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match cli.command {
        Command::Check => {
            // The subscribers files live outside the configuration: check them too.
            for d in &config.digests {
                if let Err(e) = gazette::digest::recipients(&config, d) {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(2));
                }
            }
            println!(
                "{}: ok ({} feeds, {} tag rules)",
                cli.config.display(),
                config.feeds.len(),
                config.tags.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Opml(OpmlCommand::Import { file }) => {
            let done = gazette::opml::import(&config, &file)?;
            println!(
                "{}: {} feeds added, {} already configured, {} renamed, {} refused",
                config.path.display(),
                done.added.len(),
                done.skipped.len(),
                done.renamed.len(),
                done.refused.len()
            );
            for name in &done.added {
                println!("  + {name}");
            }
            for (from, to) in &done.renamed {
                println!("  ~ {from:?} added as {to:?}: the name was taken");
            }
            for url in &done.skipped {
                println!("  = {url}: already configured");
            }
            for (url, why) in &done.refused {
                println!("  ! {url}: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { listen } => {
            let hangup = Arc::new(tokio::sync::Notify::new());
            #[cfg(unix)]
            {
                let hangup = hangup.clone();
                let mut hup =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                        .context("listening for SIGHUP")?;
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        hangup.notify_one();
                    }
                });
            }
            let app = Application::build(config).await?;
            let app = match app.listen(listen).await {
                Ok(app) => app,
                Err(e) => return Err(e),
            };
            app.run_until_stopped(shutdown_signal(), hangup).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen } => {
            let app = Application::build(config).await?.listen(listen).await?;
            if let Some(addr) = app.local_addr() {
                eprintln!("serving http://{addr}/ (Ctrl-C stops)");
            }
            app.serve_until_stopped(shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        command => {
            let app = Application::build(config).await?;
            let code = one_shot(&app, command).await;
            app.close().await;
            code
        }
    }
}

/// The commands that open the store, do one thing and close it.
async fn one_shot(app: &Application, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Poll { force } => poll(app, force).await,
        Command::Publish { out } => {
            let out = out.unwrap_or_else(|| app.config().publish.dir.clone());
            let written = app.publish(&out).await?;
            println!(
                "published {} files to {} ({} changed)",
                written.all.len(),
                out.display(),
                written.changed.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Opml(OpmlCommand::Export) => {
            let feeds = app.store().feeds().await.context("reading the feeds")?;
            let opml = gazette::publish::opml_export(&app.config(), &feeds);
            std::io::stdout().lock().write_all(&opml)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Retag => {
            let changed = app.retag().await?;
            println!("re-tagged: {changed} items changed");
            Ok(ExitCode::SUCCESS)
        }
        Command::Digest { command } => digest(app, command).await,
        Command::Db(DbCommand::Copy { to }) => copy(app, &to).await,
        Command::Items {
            tag,
            since,
            limit,
            json,
            all,
        } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let query = ItemQuery {
                tag,
                since,
                limit,
                include_excluded: all,
            };
            let items = app.items(&query).await?;
            let mut out = std::io::stdout().lock();
            for item in &items {
                if json {
                    serde_json::to_writer(&mut out, item)?;
                    writeln!(out)?;
                } else {
                    writeln!(
                        out,
                        "{:>6}  {}  {}\n        {}\n        sources: {}{}",
                        item.id,
                        item.published.format("%Y-%m-%d %H:%M"),
                        item.title,
                        item.link.as_deref().unwrap_or("(no link)"),
                        item.sources
                            .iter()
                            .map(|s| s.feed.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if item.tags.is_empty() {
                            String::new()
                        } else {
                            format!("   tags: {}", item.tags.join(", "))
                        }
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check
        | Command::Run { .. }
        | Command::Serve { .. }
        | Command::Opml(OpmlCommand::Import { .. }) => unreachable!("handled by run"),
    }
}

async fn copy(app: &Application, to: &str) -> anyhow::Result<ExitCode> {
    let url = gazette::config::parse_database_url(to).map_err(|m| anyhow::anyhow!("--to: {m}"))?;
    let target = gazette::store::Store::open(&url)
        .await
        .context("opening the target store")?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} rows {elapsed}")
                .expect("static template"),
        );
        bar
    });
    let progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let copied = gazette::app::copy_store(app.store(), &target, &progress).await;
    target.close().await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let copied = copied?;
    let mut out = std::io::stdout().lock();
    for (table, n) in &copied {
        writeln!(out, "{table}: {n} rows")?;
    }
    writeln!(out, "copied into {to}")?;
    Ok(ExitCode::SUCCESS)
}

async fn poll(app: &Application, force: bool) -> anyhow::Result<ExitCode> {
    let total = app.config().feeds.len() as u64;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} feeds {elapsed} {msg}")
                .expect("static template"),
        );
        Some(bar)
    } else {
        None
    };
    let on_done = |r: &FeedReport| match &bar {
        Some(bar) => {
            bar.inc(1);
            bar.set_message(r.name.clone());
        }
        None => eprintln!(
            "{}: {}{}",
            r.name,
            r.status,
            r.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
    };
    let waits = if force {
        Waits::Ignore
    } else {
        Waits::ServerRequested
    };
    let reports = app.poll(waits, &on_done).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print_summary(&reports);
    Ok(ExitCode::SUCCESS)
}

fn print_summary(reports: &[FeedReport]) {
    let name_w = reports
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    let status_w = reports
        .iter()
        .map(|r| r.status.to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<name_w$}  {:<status_w$}  {:>5}  {:>7}  error",
        "feed", "status", "new", "updated"
    );
    for r in reports {
        let name: String = r.name.chars().take(name_w).collect();
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<status_w$}  {:>5}  {:>7}  {}",
            name,
            r.status.to_string(),
            r.new,
            r.updated,
            match (&r.message, &r.warning) {
                (Some(m), Some(w)) => format!("{m}; warning: {w}"),
                (Some(m), None) => m.clone(),
                (None, Some(w)) => format!("warning: {w}"),
                (None, None) => String::new(),
            }
        );
    }
    let failed = reports.iter().filter(|r| r.is_error()).count();
    let new: usize = reports.iter().map(|r| r.new).sum();
    let updated: usize = reports.iter().map(|r| r.updated).sum();
    let _ = writeln!(
        out,
        "{} feeds: {} ok, {} failed; {} new, {} updated stories",
        reports.len(),
        reports.len() - failed,
        failed,
        new,
        updated
    );
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn parse_since(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    let age = gazette::config::parse_duration(s).map_err(|_| {
        anyhow::anyhow!("--since {s:?}: use a date (2026-11-01), an RFC 3339 time or an age (7d)")
    })?;
    let age = chrono::Duration::from_std(age).context("--since: age too large")?;
    Ok(Utc::now() - age)
}

async fn digest(app: &Application, command: DigestCommand) -> anyhow::Result<ExitCode> {
    let config = app.config();
    let store = app.store();
    // With one digest, output is as it was before there could be several.
    let several = config.digests.len() > 1;
    let tag = |name: &str| {
        if several {
            format!("{name}: ")
        } else {
            String::new()
        }
    };
    let code = match command {
        DigestCommand::Send { digest } => {
            let report = app.send_due_digests(digest.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            if report.periods.is_empty() && report.errors.is_empty() {
                writeln!(
                    out,
                    "nothing due: the latest digest period is already recorded"
                )?;
            }
            for p in &report.periods {
                let cfg = config.digest_named(&p.period.digest);
                let label = format!("{}{}", tag(&p.period.digest), period_label(cfg, &p.period));
                if p.skipped {
                    let too_few = cfg.is_none_or(|c| p.period.stories < c.min_stories as i64);
                    let why = if too_few {
                        "too few stories"
                    } else if p.skipped_readers.is_empty() {
                        "every reader unsubscribed"
                    } else {
                        "no reader had a story on their topics"
                    };
                    writeln!(
                        out,
                        "{label}: {} stories; {why}; recorded as skipped",
                        p.period.stories
                    )?;
                    continue;
                }
                writeln!(
                    out,
                    "{label}: {} stories; {} sent, {} failed{}{}",
                    p.period.stories,
                    p.sent.len(),
                    p.failed.len(),
                    if p.skipped_readers.is_empty() {
                        String::new()
                    } else {
                        format!(", {} skipped", p.skipped_readers.len())
                    },
                    if p.resumed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({} interrupted earlier, sent again with the same Message-ID)",
                            p.resumed.len()
                        )
                    }
                )?;
                for (r, e, permanent) in &p.failed {
                    let kind = if *permanent {
                        "refused"
                    } else {
                        "will retry on the next send"
                    };
                    eprintln!("{}{r}: {kind}: {e}", tag(&p.period.digest));
                }
            }
            for (name, e) in &report.errors {
                eprintln!("{}{e}", tag(name));
            }
            if report.has_failures() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        DigestCommand::Status { digest, limit } => {
            let chosen: Vec<&gazette::config::DigestConfig> = match &digest {
                Some(name) => vec![gazette::digest::select(&config, Some(name))?],
                None => config.digests.iter().collect(),
            };
            let mut out = std::io::stdout().lock();
            // Periods of digests no longer configured are shown too.
            let mut names: Vec<String> = chosen.iter().map(|d| d.name.clone()).collect();
            if digest.is_none() {
                for p in store.periods(None, 1000).await? {
                    if !names.contains(&p.digest) {
                        names.push(p.digest);
                    }
                }
            }
            let mut any = false;
            for name in &names {
                let periods = gazette::delivery::digest_status(store, Some(name), limit).await?;
                if names.len() > 1 {
                    writeln!(out, "== {name} ==")?;
                }
                if periods.is_empty() && names.len() > 1 {
                    writeln!(out, "no period recorded yet")?;
                }
                let cfg = config.digest_named(name);
                for (p, deliveries) in periods {
                    any = true;
                    writeln!(
                        out,
                        "{}  {}  {} stories",
                        period_label(cfg, &p),
                        p.status.as_str(),
                        p.stories
                    )?;
                    for d in deliveries {
                        let topics = if d.topics.is_empty() {
                            String::new()
                        } else {
                            format!("  [{}]", d.topics.join(" "))
                        };
                        writeln!(
                            out,
                            "    {:<8} {}  {}  attempts {}{}{topics}",
                            d.state.as_str(),
                            d.recipient,
                            d.message_id,
                            d.attempts,
                            d.reply.map(|r| format!("  {r}")).unwrap_or_default()
                        )?;
                    }
                }
            }
            if !any && names.len() <= 1 {
                writeln!(out, "no digest recorded yet")?;
            }
            ExitCode::SUCCESS
        }
        DigestCommand::Preview {
            digest,
            to,
            out,
            text,
        } => {
            let cfg = gazette::digest::select(&config, digest.as_deref())?;
            let now = Utc::now();
            let (topics, unsubscribe) = match &to {
                Some(address) => {
                    let want = gazette::mail::mailbox(address)?;
                    let reader = gazette::digest::recipients(&config, cfg)?
                        .into_iter()
                        .find(|r| r.mailbox.email == want.email)
                        .ok_or_else(|| {
                            gazette::digest::DigestError::NotARecipient(want.email.to_string())
                        })?;
                    let signer = gazette::unsubscribe::Signer::for_store(store).await?;
                    let token = signer.token(&cfg.name, reader.mailbox.email.as_ref());
                    let u = gazette::digest::unsubscribe_for(&config, cfg, &reader.mailbox, &token);
                    (reader.topics, u)
                }
                None => (Vec::new(), gazette::digest::preview_unsubscribe(cfg)),
            };
            let d = gazette::digest::upcoming(&config, cfg, store, now, &topics).await?;
            let rendered = if text {
                gazette::digest::render_text(&d, &unsubscribe)?
            } else {
                gazette::digest::render_html(&d, &unsubscribe)?
            };
            match out {
                Some(path) => std::fs::write(&path, rendered)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().lock().write_all(rendered.as_bytes())?,
            }
            ExitCode::SUCCESS
        }
        DigestCommand::Subscribers { digest } => {
            let chosen: Vec<&gazette::config::DigestConfig> = match &digest {
                Some(name) => vec![gazette::digest::select(&config, Some(name))?],
                None => config.digests.iter().collect(),
            };
            if chosen.is_empty() {
                return Err(gazette::digest::DigestError::NotConfigured.into());
            }
            let mut out = std::io::stdout().lock();
            for cfg in chosen {
                let left: std::collections::HashMap<String, gazette::model::Suppression> = store
                    .suppressions(Some(&cfg.name))
                    .await?
                    .into_iter()
                    .map(|s| (s.recipient.clone(), s))
                    .collect();
                let readers = gazette::digest::recipients(&config, cfg)?;
                let active = readers
                    .iter()
                    .filter(|r| !left.contains_key(&r.key()))
                    .count();
                writeln!(
                    out,
                    "{} ({}): {active} active, {} unsubscribed",
                    cfg.name,
                    cfg.title,
                    left.len()
                )?;
                for r in &readers {
                    let topics = if r.topics.is_empty() {
                        "all sections".to_string()
                    } else {
                        r.topics.join(" ")
                    };
                    match left.get(&r.key()) {
                        Some(s) => writeln!(
                            out,
                            "    unsubscribed  {}  {topics}  (since {}, {})",
                            r.mailbox.email,
                            s.at.format("%Y-%m-%d %H:%M UTC"),
                            s.how
                        )?,
                        None => writeln!(out, "    active        {}  {topics}", r.mailbox.email)?,
                    }
                }
                // Left, and no longer listed either.
                for s in left.values() {
                    if !readers.iter().any(|r| r.key() == s.recipient) {
                        writeln!(
                            out,
                            "    unsubscribed  {}  (no longer listed; since {}, {})",
                            s.recipient,
                            s.at.format("%Y-%m-%d %H:%M UTC"),
                            s.how
                        )?;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        DigestCommand::Resubscribe { digest, address } => {
            let cfg = gazette::digest::select(&config, Some(&digest))?;
            let mailbox = gazette::mail::mailbox(&address)?;
            let email = mailbox.email.to_string();
            if store.unsuppress(&cfg.name, &email).await? {
                println!("{email} gets {} again", cfg.name);
            } else {
                println!("{email} had not unsubscribed from {}", cfg.name);
            }
            ExitCode::SUCCESS
        }
    };
    Ok(code)
}

/// `2026-11-16 08:00 → 2026-11-23 08:00 Europe/Zurich` (in UTC for a digest
/// no longer configured).
fn period_label(
    cfg: Option<&gazette::config::DigestConfig>,
    p: &gazette::model::DigestPeriod,
) -> String {
    let tz = cfg.map_or(chrono_tz::UTC, |c| c.timezone());
    format!(
        "{} → {} {}",
        p.start.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        p.cutoff.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        tz
    )
}

/// `--listen ADDR`.
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    gazette::config::parse_listen(s)
}
