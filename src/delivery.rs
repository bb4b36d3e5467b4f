//! Sending the digest: which period is due, one message per recipient,
//! exactly once. Ties [`crate::digest`] (what a digest holds and how it
//! reads), [`crate::mail`] (the transport) and the store's delivery ledger
//! (a compare-and-set per recipient, and the sender's lock).

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::archive;
use crate::config::{Config, DigestConfig};
use crate::digest::{self, DigestError};
use crate::mail::{self, Mailer, Outgoing};
use crate::model::{
    Delivery, DeliveryState, DigestPeriod, NewDelivery, NewIssue, NewPeriod, PeriodStatus,
};
use crate::store::{DeliveryOutcome, Store};
use crate::unsubscribe::Signer;

/// What one `digest send` did for one period.
#[derive(Debug, Clone)]
pub struct PeriodReport {
    /// The period (its `digest` names the digest).
    pub period: DigestPeriod,
    /// Recorded as skipped (fewer than `min_stories` stories, or no reader
    /// had a story on their topics).
    pub skipped: bool,
    /// Recipients that got it in this run, with the server's reply.
    pub sent: Vec<(String, String)>,
    /// Recipients it failed for in this run, with the reply; `true` when permanent.
    pub failed: Vec<(String, String, bool)>,
    /// Deliveries found `pending` (interrupted mid-send) and sent again.
    pub resumed: Vec<String>,
    /// Readers not sent to, with why: no story on their topics, or they
    /// unsubscribed.
    pub skipped_readers: Vec<(String, String)>,
}

impl PeriodReport {
    fn new(period: DigestPeriod) -> PeriodReport {
        PeriodReport {
            period,
            skipped: false,
            sent: vec![],
            failed: vec![],
            resumed: vec![],
            skipped_readers: vec![],
        }
    }
}

/// What a `digest send` did: one report per period it touched, and the
/// digests it could not send.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    /// Per digest: unfinished earlier periods first, then the newly due one.
    pub periods: Vec<PeriodReport>,
    /// Digests that could not be sent, with the error (the others still were).
    pub errors: Vec<(String, String)>,
}

impl SendReport {
    /// Any delivery (or a whole digest) failed in this run.
    pub fn has_failures(&self) -> bool {
        !self.errors.is_empty() || self.periods.iter().any(|p| !p.failed.is_empty())
    }
}

/// Why a reader with topics gets nothing this period.
pub const NO_TOPIC_STORIES: &str = "no story on their topics in this period";

/// Why a reader is not sent an issue recorded before they left.
pub const UNSUBSCRIBED: &str = "unsubscribed";

/// Sends every configured digest that is due at `now` (only the one named
/// `only`, when given), exactly once per recipient; see [`send_digest`].
/// One sender at a time: fails with [`crate::store::StoreError::SenderBusy`]
/// while another holds the store's sender lock. A digest that cannot be
/// sent (a bad subscribers file, an SMTP setup error) is reported in
/// [`SendReport::errors`]; the others are still sent.
pub async fn send_due_digests(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
    only: Option<&str>,
) -> anyhow::Result<SendReport> {
    let chosen: Vec<&DigestConfig> = match only {
        Some(name) => vec![digest::select(config, Some(name))?],
        None => config.digests.iter().collect(),
    };
    if chosen.is_empty() {
        return Err(DigestError::NotConfigured.into());
    }
    // One sender at a time: another one's `pending` rows are in flight, not
    // interrupted. The lock goes when its holder dies, even by kill -9.
    let _lock = store.lock_digest_sender().await?;
    let signer = Signer::for_store(store)
        .await
        .context("reading the key of unsubscribe links")?;
    let mut report = SendReport::default();
    for cfg in chosen {
        let done = async {
            let mailer = mailer(cfg)?;
            send_digest(config, cfg, store, &mailer, &signer, now).await
        }
        .await;
        match done {
            Ok(periods) => report.periods.extend(periods),
            Err(e) => report.errors.push((cfg.name.clone(), format!("{e:#}"))),
        }
    }
    Ok(report)
}

/// Sends the digest `cfg` that is due at `now`, exactly once per recipient.
/// The caller holds the store's sender lock.
///
/// First finishes periods left open (a crash, a kill, temporary failures),
/// then records the newly due period, if any, with a queued delivery per
/// recipient (or a skipped one, for a reader none of whose topics has a
/// story), and its issue for the archive, and sends those. Readers who
/// unsubscribed get no row. Each delivery is marked `pending` in the store
/// before the transport is called and `sent` (or `failed`) right after, so
/// a rerun only sends what was not confirmed.
///
/// A delivery found `pending` had its outcome lost: the process died while
/// the server held the message. It is sent again with the same Message-ID.
/// The alternative, never resending it, would silently skip recipients
/// whenever the process dies before the server accepted the message (the
/// common case: the send is much longer than the instant between the
/// server's 250 and the store's commit); resending at worst duplicates a
/// message the receiving side can recognise by its Message-ID.
pub async fn send_digest(
    config: &Config,
    cfg: &DigestConfig,
    store: &Store,
    mailer: &Mailer,
    signer: &Signer,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<PeriodReport>> {
    let mut reports = Vec::new();
    for period in store.open_periods(Some(&cfg.name)).await? {
        reports.push(deliver_period(config, cfg, store, mailer, signer, period).await?);
    }
    let last = store
        .periods(Some(&cfg.name), 1)
        .await?
        .first()
        .map(|p| p.cutoff);
    let Some(due) = digest::due_period(&cfg.schedule, last, now) else {
        return Ok(reports);
    };
    let stories = digest::stories_for(store, cfg, due).await?;
    let recipients = digest::recipients(config, cfg)?;
    if recipients.is_empty() {
        return Err(DigestError::NoRecipients.into());
    }
    let left: HashSet<String> = store
        .suppressions(Some(&cfg.name))
        .await?
        .into_iter()
        .map(|s| s.recipient)
        .collect();
    let from_domain = cfg.from.email.domain().to_string();
    let deliveries: Vec<NewDelivery> = if stories.len() >= cfg.min_stories {
        recipients
            .iter()
            .filter(|r| !left.contains(&r.key()))
            .map(|r| {
                let has = r.topics.is_empty()
                    || stories
                        .iter()
                        .any(|s| s.tags.iter().any(|t| r.topics.contains(t)));
                NewDelivery {
                    recipient: r.mailbox.to_string(),
                    message_id: new_message_id(due.cutoff, &from_domain),
                    topics: r.topics.clone(),
                    state: if has {
                        DeliveryState::Queued
                    } else {
                        DeliveryState::Skipped
                    },
                    reply: (!has).then(|| NO_TOPIC_STORIES.to_string()),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let issue = if deliveries.iter().any(|d| d.state == DeliveryState::Queued) {
        let mut whole = digest::build(config, cfg, &stories, due, &[]);
        whole.web = true;
        Some(NewIssue {
            slug: archive::slug(cfg, due.cutoff),
            subject: whole.subject.clone(),
            html: digest::render_html(&whole, &digest::Unsubscribe::default())?,
        })
    } else {
        None
    };
    let (period, _) = store
        .record_period(&NewPeriod {
            digest: cfg.name.clone(),
            start: due.start,
            cutoff: due.cutoff,
            stories: stories.len() as i64,
            deliveries,
            issue,
            now: Utc::now(),
        })
        .await
        .context("recording the digest period")?;
    if period.status == PeriodStatus::Skipped {
        let mut r = PeriodReport::new(period.clone());
        r.skipped = true;
        r.skipped_readers = store
            .deliveries(period.id)
            .await?
            .into_iter()
            .map(|d| (d.recipient, d.reply.unwrap_or_default()))
            .collect();
        reports.push(r);
    } else if period.status == PeriodStatus::Open {
        reports.push(deliver_period(config, cfg, store, mailer, signer, period).await?);
    }
    Ok(reports)
}

/// `digest send` runs in which a delivery that keeps failing temporarily is
/// tried (each with the SMTP retries) before it is given up as failed.
pub const MAX_DELIVERY_RUNS: i64 = 5;

fn new_message_id(cutoff: DateTime<Utc>, domain: &str) -> String {
    let r: u64 = rand::random();
    format!(
        "<digest.{}.{r:016x}@{domain}>",
        cutoff.format("%Y%m%dT%H%MZ")
    )
}

/// Sends every unconfirmed delivery of an open period, in recipient order.
async fn deliver_period(
    config: &Config,
    cfg: &DigestConfig,
    store: &Store,
    mailer: &Mailer,
    signer: &Signer,
    period: DigestPeriod,
) -> anyhow::Result<PeriodReport> {
    let range = digest::Period {
        start: period.start,
        cutoff: period.cutoff,
    };
    let stories = digest::stories_for(store, cfg, range).await?;
    let archive_url = store
        .issues(Some(&cfg.name), ISSUES_LOOKED_UP, false)
        .await?
        .into_iter()
        .find(|i| i.period_id == period.id)
        .map(|i| archive::issue_url(config, &cfg.name, &i.slug));
    let left: HashSet<String> = store
        .suppressions(Some(&cfg.name))
        .await?
        .into_iter()
        .map(|s| s.recipient)
        .collect();
    // One content per set of topics; the copies differ only in their links.
    let mut contents: HashMap<Vec<String>, digest::Digest> = HashMap::new();
    let from = cfg.from.clone();
    let mut report = PeriodReport::new(period.clone());
    let deliveries = store.deliveries(period.id).await?;
    let mut session = mailer.session();
    for d in &deliveries {
        let due = match d.state {
            DeliveryState::Queued => true,
            DeliveryState::Pending => {
                tracing::warn!(recipient = %d.recipient, message_id = %d.message_id,
                    "delivery was interrupted; sending it again with the same Message-ID");
                report.resumed.push(d.recipient.clone());
                true
            }
            DeliveryState::Failed => !d.permanent,
            DeliveryState::Sent | DeliveryState::Skipped => false,
        };
        if !due {
            continue;
        }
        let to = mail::mailbox(&d.recipient)?;
        if left.contains(&to.email.to_string().to_lowercase()) {
            // They left after the period was recorded: never mailed again.
            if store.skip_delivery(d, UNSUBSCRIBED, Utc::now()).await? {
                report
                    .skipped_readers
                    .push((d.recipient.clone(), UNSUBSCRIBED.into()));
            }
            continue;
        }
        let content = contents.entry(d.topics.clone()).or_insert_with(|| {
            let mut c = digest::build(config, cfg, &stories, range, &d.topics);
            c.archive_url = archive_url.clone();
            c
        });
        let token = signer.token(&cfg.name, to.email.as_ref());
        let unsubscribe = digest::unsubscribe_for(config, cfg, &to, &token);
        let message = mail::build_message(&Outgoing {
            from: from.clone(),
            to: to.clone(),
            subject: content.subject.clone(),
            message_id: d.message_id.clone(),
            date: std::time::SystemTime::now(),
            html: digest::render_html(content, &unsubscribe)?,
            text: digest::render_text(content, &unsubscribe)?,
            list_id: cfg.list_id.clone(),
            one_click: unsubscribe.one_click(),
            unsubscribe_url: unsubscribe.url.clone(),
            unsubscribe_mailto: unsubscribe.mailto.clone(),
        })?;
        let claimed = store
            .claim_delivery(d, Utc::now())
            .await
            .context("recording a delivery as pending")?;
        if !claimed {
            // Another `digest send` (or the daemon) took it meanwhile.
            continue;
        }
        match session.send(&message).await {
            Ok(reply) => {
                store
                    .finish_delivery(
                        period.id,
                        &d.recipient,
                        &DeliveryOutcome::Sent(reply.clone()),
                        Utc::now(),
                    )
                    .await
                    .context("recording a sent delivery")?;
                report.sent.push((d.recipient.clone(), reply));
            }
            Err(e) => {
                tracing::warn!(recipient = %d.recipient, error = %e.reply, "digest delivery failed");
                // A temporary failure is tried again by later sends, up to a point.
                let give_up = !e.permanent && !e.stops_run && d.attempts + 1 >= MAX_DELIVERY_RUNS;
                let reply = if give_up {
                    format!("gave up after {MAX_DELIVERY_RUNS} sends: {}", e.reply)
                } else {
                    e.reply.clone()
                };
                let permanent = e.permanent || give_up;
                store
                    .finish_delivery(
                        period.id,
                        &d.recipient,
                        &DeliveryOutcome::Failed {
                            reply: reply.clone(),
                            permanent,
                        },
                        Utc::now(),
                    )
                    .await
                    .context("recording a failed delivery")?;
                report.failed.push((d.recipient.clone(), reply, permanent));
                if e.stops_run {
                    // A TLS failure: every other recipient would fail alike.
                    break;
                }
            }
        }
    }
    session.close().await;
    let after = store.deliveries(period.id).await?;
    let finished = after.iter().all(|d| {
        matches!(d.state, DeliveryState::Sent | DeliveryState::Skipped)
            || (d.state == DeliveryState::Failed && d.permanent)
    });
    if finished {
        store.close_digest_period(period.id).await?;
        report.period.status = PeriodStatus::Done;
    }
    Ok(report)
}

/// Issues read to find the one of a period being sent (it is among the newest).
const ISSUES_LOOKED_UP: i64 = 64;

/// The most recent periods of `digest` (every digest when `None`) with
/// their deliveries, newest first.
pub async fn digest_status(
    store: &Store,
    digest: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<(DigestPeriod, Vec<Delivery>)>> {
    let mut out = Vec::new();
    for p in store.periods(digest, limit).await? {
        let d = store.deliveries(p.id).await?;
        out.push((p, d));
    }
    Ok(out)
}

/// Builds the mailer a digest configures.
pub fn mailer(cfg: &DigestConfig) -> anyhow::Result<Mailer> {
    Ok(Mailer::new(cfg)?)
}

/// The start of the oldest digest period not yet sent, over every digest:
/// stories stored since then must not be pruned. The far future when there
/// is no digest.
pub async fn unsent_since(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> anyhow::Result<DateTime<Utc>> {
    let mut since = DateTime::<Utc>::MAX_UTC;
    for cfg in &config.digests {
        let last = match store.periods(Some(&cfg.name), 1).await?.first() {
            Some(last) => last.cutoff,
            // The first digest covers the last 7 days.
            None => now - digest::FIRST_PERIOD,
        };
        since = since.min(last);
    }
    if config.digests.is_empty() {
        return Ok(since);
    }
    for p in store.open_periods(None).await? {
        since = since.min(p.start);
    }
    Ok(since)
}
