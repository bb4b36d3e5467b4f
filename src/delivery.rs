//! Sending the digest: which period is due, one message per recipient,
//! exactly once. Ties [`crate::digest`] (what a digest holds and how it
//! reads), [`crate::mail`] (the transport) and the store's delivery ledger
//! (a compare-and-set per recipient, and the sender's lock).

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::digest::{self, DigestError};
use crate::mail::{self, Mailer, Outgoing};
use crate::model::{Delivery, DeliveryState, DigestPeriod, PeriodStatus};
use crate::store::{DeliveryOutcome, Store};

/// What one `digest send` did for one period.
#[derive(Debug, Clone)]
pub struct PeriodReport {
    /// The period.
    pub period: DigestPeriod,
    /// Recorded as skipped (no stories and `send_when_empty = false`).
    pub skipped: bool,
    /// Recipients that got it in this run, with the server's reply.
    pub sent: Vec<(String, String)>,
    /// Recipients it failed for in this run, with the reply; `true` when permanent.
    pub failed: Vec<(String, String, bool)>,
    /// Deliveries found `pending` (interrupted mid-send) and sent again.
    pub resumed: Vec<String>,
}

/// What a `digest send` did: one report per period it touched.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    /// Unfinished earlier periods first, then the newly due one.
    pub periods: Vec<PeriodReport>,
}

impl SendReport {
    /// Any delivery failed in this run.
    pub fn has_failures(&self) -> bool {
        self.periods.iter().any(|p| !p.failed.is_empty())
    }
}

/// Sends the digest that is due at `now`, exactly once per recipient.
///
/// First finishes periods left open (a crash, a kill, temporary failures),
/// then records the newly due period, if any, with a queued delivery per
/// recipient, and sends those. Each delivery is marked `pending` in the
/// store before the transport is called and `sent` (or `failed`) right
/// after, so a rerun only sends what was not confirmed.
///
/// A delivery found `pending` had its outcome lost: the process died while
/// the server held the message. It is sent again with the same Message-ID.
/// The alternative, never resending it, would silently skip recipients
/// whenever the process dies before the server accepted the message (the
/// common case: the send is much longer than the instant between the
/// server's 250 and the store's commit); resending at worst duplicates a
/// message the receiving side can recognise by its Message-ID.
pub async fn send_due_digest(
    config: &Config,
    store: &Store,
    mailer: &Mailer,
    now: DateTime<Utc>,
) -> anyhow::Result<SendReport> {
    let cfg = digest::settings(config)?;
    // One sender at a time: another one's `pending` rows are in flight, not
    // interrupted. The lock goes when its holder dies, even by kill -9.
    let _lock = store.lock_digest_sender().await?;
    let mut report = SendReport::default();
    for period in store.open_digest_periods().await? {
        report
            .periods
            .push(deliver_period(config, store, mailer, period).await?);
    }
    let last = store.digest_periods(1).await?.first().map(|p| p.cutoff);
    let Some(due) = digest::due_period(&cfg.schedule, last, now) else {
        return Ok(report);
    };
    let stories = digest::stories(store, due).await?;
    let recipients = digest::recipients(cfg)?;
    if recipients.is_empty() {
        return Err(DigestError::NoRecipients.into());
    }
    let send = !stories.is_empty() || cfg.send_when_empty;
    let from_domain = cfg.from.email.domain().to_string();
    let rows: Vec<(String, String)> = if send {
        recipients
            .iter()
            .map(|m| (m.to_string(), new_message_id(due.cutoff, &from_domain)))
            .collect()
    } else {
        Vec::new()
    };
    let (period, _) = store
        .create_digest_period(
            due.start,
            due.cutoff,
            stories.len() as i64,
            &rows,
            Utc::now(),
        )
        .await
        .context("recording the digest period")?;
    if period.status == PeriodStatus::Skipped {
        report.periods.push(PeriodReport {
            period,
            skipped: true,
            sent: vec![],
            failed: vec![],
            resumed: vec![],
        });
    } else if period.status == PeriodStatus::Open {
        report
            .periods
            .push(deliver_period(config, store, mailer, period).await?);
    }
    Ok(report)
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
    store: &Store,
    mailer: &Mailer,
    period: DigestPeriod,
) -> anyhow::Result<PeriodReport> {
    let cfg = digest::settings(config)?;
    let range = digest::Period {
        start: period.start,
        cutoff: period.cutoff,
    };
    let stories = digest::stories(store, range).await?;
    let content = digest::build(config, cfg, &stories, range);
    let from = cfg.from.clone();
    let mut report = PeriodReport {
        period: period.clone(),
        skipped: false,
        sent: vec![],
        failed: vec![],
        resumed: vec![],
    };
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
            DeliveryState::Sent => false,
        };
        if !due {
            continue;
        }
        let to = mail::mailbox(&d.recipient)?;
        let unsubscribe = digest::unsubscribe_for(cfg, &to);
        let message = mail::build_message(&Outgoing {
            from: from.clone(),
            to: to.clone(),
            subject: content.subject.clone(),
            message_id: d.message_id.clone(),
            date: std::time::SystemTime::now(),
            html: digest::render_html(&content, &unsubscribe)?,
            text: digest::render_text(&content, &unsubscribe)?,
            list_id: cfg.list_id.clone(),
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
        d.state == DeliveryState::Sent || (d.state == DeliveryState::Failed && d.permanent)
    });
    if finished {
        store.close_digest_period(period.id).await?;
        report.period.status = PeriodStatus::Done;
    }
    Ok(report)
}

/// The most recent digest periods with their deliveries, newest first.
pub async fn digest_status(
    store: &Store,
    limit: i64,
) -> anyhow::Result<Vec<(DigestPeriod, Vec<Delivery>)>> {
    let mut out = Vec::new();
    for p in store.digest_periods(limit).await? {
        let d = store.deliveries(p.id).await?;
        out.push((p, d));
    }
    Ok(out)
}

/// Builds the mailer the `[digest]` section configures.
pub fn mailer(config: &Config) -> anyhow::Result<Mailer> {
    let cfg = digest::settings(config)?;
    Ok(Mailer::new(cfg)?)
}

/// The start of the oldest digest period not yet sent: stories stored
/// since then must not be pruned. `now` is far enough when there is no
/// digest.
pub async fn unsent_since(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> anyhow::Result<DateTime<Utc>> {
    if config.digest.is_none() {
        return Ok(DateTime::<Utc>::MAX_UTC);
    }
    let mut since = match store.digest_periods(1).await?.first() {
        Some(last) => last.cutoff,
        // The first digest covers the last 7 days.
        None => now - digest::FIRST_PERIOD,
    };
    for p in store.open_digest_periods().await? {
        since = since.min(p.start);
    }
    Ok(since)
}
