//! Dates as feeds really write them → UTC.
//!
//! One function, [`parse_date`], read by both parsers (feed-rs through its
//! timestamp hook, and the fast path). It follows the shapes Python
//! feedparser reads — W3C/ISO 8601 (`2018-01-06T08:00`, `2018-01-06 08:00:00`,
//! `20180106T080000Z`, `2018/1/6 8:00:00`), RFC 822/2822 and their many
//! deviations (two-digit years, month and day swapped, long month and day
//! names, 12-hour clocks, `GMT+2`, `+00:0`, zone names, asctime) — with
//! feedparser's defaults: no time is midnight, no zone is UTC, two-digit
//! years below 90 are 20xx. Month names are also read in French, German,
//! Spanish, Italian, Portuguese and Dutch.
//!
//! Hand-written rather than taken from a crate: the crates that read "any
//! date" (dateparser, …) guess local time zones and miss feed shapes such
//! as `+00:0`; the rules here are feedparser's, which is what feeds are
//! checked against.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

/// The instant `raw` names, or `None` when it is not a date this function
/// can read (the caller then keeps the first-seen time).
pub fn parse_date(raw: &str) -> Option<DateTime<Utc>> {
    let s = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if s.is_empty() || s.len() > 100 {
        return None;
    }
    // The common case first: RFC 3339 as Atom and JSON Feed specify it.
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        let d = d.with_timezone(&Utc);
        return (1800..=2300)
            .contains(&chrono::Datelike::year(&d))
            .then_some(d);
    }
    if let Some(d) = rfc2822_canonical(s) {
        return Some(d);
    }
    let s: std::borrow::Cow<'_, str> = if s.contains('\u{a0}') {
        s.replace('\u{a0}', " ").into()
    } else {
        s.into()
    };
    iso(&s).or_else(|| words(&s))
}

/// RFC 2822 as RSS specifies it, `Www, DD Mon YYYY HH:MM:SS +hhmm` (or
/// `GMT`), the common case, read without the general rules' allocations.
fn rfc2822_canonical(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let shape = b.len() >= 29
        && b[3] == b','
        && b[4] == b' '
        && b[7] == b' '
        && b[11] == b' '
        && b[16] == b' '
        && b[19] == b':'
        && b[22] == b':'
        && b[25] == b' '
        && [5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24]
            .iter()
            .all(|&k| b[k].is_ascii_digit());
    if !shape {
        return None;
    }
    let zone = &s[26..];
    let offset = match zone {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        z if z.len() == 5 && z.starts_with(['+', '-']) => offset(z)?,
        _ => return None,
    };
    let month = month_number(&s[8..11].to_ascii_lowercase())?;
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    let date = NaiveDate::from_ymd_opt(num(12..16)? as i32, month, num(5..7)?)?;
    Parts {
        date,
        time: (num(17..19)?, num(20..22)?, num(23..25)?, 0),
        offset,
    }
    .utc()
}

/// A calendar date, a time of day and an offset east of UTC in seconds.
struct Parts {
    date: NaiveDate,
    time: (u32, u32, u32, u32),
    offset: i64,
}

impl Parts {
    fn utc(&self) -> Option<DateTime<Utc>> {
        let (h, m, s, nanos) = self.time;
        // 24:00:00 is the end of the day (ISO 8601); feeds also write 24:05.
        let (h, extra_day) = if h == 24 { (0, 1) } else { (h, 0) };
        let time = NaiveTime::from_hms_nano_opt(h, m, s.min(59), nanos)?;
        let local = self.date.and_time(time) + Duration::days(extra_day);
        if !(1800..=2300).contains(&chrono::Datelike::year(&local)) {
            return None;
        }
        Some((local - Duration::seconds(self.offset)).and_utc())
    }
}

/// W3C/ISO 8601 and its relatives: the year first.
fn iso(s: &str) -> Option<DateTime<Utc>> {
    let mut c = Cursor::new(s);
    let year = c.digits(4, 4)?;
    let (month, day) = match c.peek() {
        Some(sep @ (b'-' | b'/' | b'.')) => {
            c.bump();
            let month = c.digits(1, 2)?;
            if c.peek() == Some(sep) {
                c.bump();
                (month, c.digits(1, 2)?)
            } else {
                (month, 1)
            }
        }
        // Basic format: 20180106.
        Some(b'0'..=b'9') => (c.digits(2, 2)?, c.digits(2, 2)?),
        _ => (1, 1),
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let mut parts = Parts {
        date,
        time: (0, 0, 0, 0),
        offset: 0,
    };
    match c.peek() {
        None => return parts.utc(),
        Some(b'T' | b't') => c.bump(),
        Some(b' ') => c.skip_spaces(),
        Some(_) => {}
    }
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        parts.time = c.time()?;
    }
    c.skip_spaces();
    // An AM/PM after an ISO time is rare but seen.
    if let Some(m) = c.meridian() {
        parts.time.0 = to_24h(parts.time.0, m)?;
        c.skip_spaces();
    }
    if !c.done() {
        parts.offset = zone(c.rest())?;
    }
    parts.utc()
}

/// RFC 822 and everything shaped like it: words and numbers in any order
/// (`Sat, Dec 16 2023 02:02:33 PM`, `16 December 2023`, `Sun Nov  6
/// 08:49:37 1994`, `Fri,24 Nov 2023 18:28:36 -0000`, `16-Dec-23`,
/// `16.12.2023`).
fn words(s: &str) -> Option<DateTime<Utc>> {
    let (mut day, mut month, mut year) = (None::<u32>, None::<u32>, None::<i32>);
    let mut time = None;
    let mut meridian = None;
    let mut offset: Option<i64> = None;
    let mut comment = false;
    let mut tokens: Vec<&str> = Vec::new();
    for t in s.split(|c: char| c.is_whitespace() || c == ',') {
        if t.is_empty() {
            continue;
        }
        // All-number dates: `16.12.2023` (day first), `12/16/2023` (month
        // first unless the first number cannot be a month).
        if let Some((d, m, y)) = numeric_date(t) {
            (day, month, year) = (Some(d), Some(m), Some(y));
            continue;
        }
        // A dash standing alone separates a date from its time.
        if t == "-" {
            continue;
        }
        // `16-Dec-2023`, `16/Dec/2023`, `16/Dec/2023:14:02:00`: split on
        // the separators (a time after a `:`).
        let (date_part, time_part) = match t.split_once(':') {
            Some((d, rest)) if d.contains('/') => (d, Some(rest)),
            _ => (t, None),
        };
        if date_part.starts_with(|c: char| c.is_ascii_digit())
            && date_part.contains(['-', '/'])
            && (time_part.is_some() || !date_part.contains(':'))
        {
            tokens.extend(date_part.split(['-', '/']).filter(|p| !p.is_empty()));
            tokens.extend(time_part);
        } else {
            tokens.push(t);
        }
    }
    for token in tokens {
        if comment || token.starts_with('(') {
            comment = !token.ends_with(')');
            continue;
        }
        let t = token.trim_end_matches('.');
        if t.is_empty() {
            continue;
        }
        let first = t.as_bytes()[0];
        if first.is_ascii_digit() {
            if t.contains(':') {
                // A time, maybe with its meridian or zone attached.
                let mut c = Cursor::new(t);
                time = Some(c.time()?);
                if let Some(m) = c.meridian() {
                    meridian = Some(m);
                }
                if !c.done() {
                    offset = Some(zone(c.rest())?);
                }
                continue;
            }
            let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let suffix = &t[digits.len()..];
            if !digits.bytes().all(|b| b.is_ascii_digit())
                || !matches!(suffix, "" | "st" | "nd" | "rd" | "th" | "er")
            {
                return None;
            }
            let n: u32 = digits.parse().ok()?;
            match digits.len() {
                4 if year.is_none() => year = Some(n as i32),
                1 | 2 if day.is_none() => day = Some(n),
                // A second small number after the day is a two-digit year.
                2 if year.is_none() && suffix.is_empty() => year = Some(two_digit_year(n)),
                _ => return None,
            }
            continue;
        }
        if first == b'+' || first == b'-' {
            offset = Some(zone(t)?);
            continue;
        }
        let lower = t.to_lowercase();
        if month.is_none()
            && let Some(m) = month_number(&lower)
        {
            month = Some(m);
            continue;
        }
        if is_weekday(&lower)
            || matches!(
                lower.as_str(),
                "at" | "the" | "of" | "de" | "del" | "le" | "um" | "à"
            )
        {
            continue;
        }
        if let Some(m) = meridian_word(&lower) {
            meridian = Some(m);
            continue;
        }
        if time.is_some() || year.is_some() {
            offset = Some(zone(t)?);
            continue;
        }
        return None;
    }
    let (h, m, sec, nanos) = time.unwrap_or((0, 0, 0, 0));
    let h = match meridian {
        Some(mer) => to_24h(h, mer)?,
        None => h,
    };
    let date = NaiveDate::from_ymd_opt(year?, month?, day?)?;
    Parts {
        date,
        time: (h, m, sec, nanos),
        offset: offset.unwrap_or(0),
    }
    .utc()
}

/// feedparser's rule: 90–99 are the 1990s, 00–89 the 2000s.
fn two_digit_year(n: u32) -> i32 {
    if n < 90 {
        2000 + n as i32
    } else {
        1900 + n as i32
    }
}

/// `D.M.YYYY`, `M/D/YYYY` (or `D/M/YYYY` when D > 12), `D-M-YYYY`: (day, month, year).
fn numeric_date(t: &str) -> Option<(u32, u32, i32)> {
    let sep = t.bytes().find(|b| matches!(b, b'.' | b'/' | b'-'))?;
    let parts: Vec<&str> = t.split(sep as char).collect();
    let [a, b, y] = parts.as_slice() else {
        return None;
    };
    let num = |p: &str, max: usize| {
        (!p.is_empty() && p.len() <= max && p.bytes().all(|c| c.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    let (a, b) = (num(a, 2)?, num(b, 2)?);
    let year = match y.len() {
        4 => num(y, 4)? as i32,
        2 => two_digit_year(num(y, 2)?),
        _ => return None,
    };
    let (d, m) = if sep == b'/' && a <= 12 {
        (b, a)
    } else {
        (a, b)
    };
    Some((d, m, year))
}

/// The hour on a 24-hour clock from a 12-hour one (`pm` is true for PM).
fn to_24h(h: u32, pm: bool) -> Option<u32> {
    match (h, pm) {
        (1..=11, true) => Some(h + 12),
        (12, false) => Some(0),
        (1..=12, _) => Some(h),
        // `14:00 PM`: the clock was 24-hour already.
        (13..=23, true) => Some(h),
        _ => None,
    }
}

fn meridian_word(w: &str) -> Option<bool> {
    match w {
        "am" | "a.m" | "a.m." => Some(false),
        "pm" | "p.m" | "p.m." => Some(true),
        _ => None,
    }
}

fn is_weekday(w: &str) -> bool {
    const DAYS: &[&str] = &[
        "mon",
        "tue",
        "tues",
        "wed",
        "thu",
        "thur",
        "thurs",
        "fri",
        "sat",
        "sun",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday", // English
        "lun",
        "mer",
        "jeu",
        "ven",
        "sam",
        "dim",
        "lundi",
        "mardi",
        "mercredi",
        "jeudi",
        "vendredi",
        "samedi",
        "dimanche", // French
        "mo",
        "di",
        "mi",
        "do",
        "fr",
        "sa",
        "so",
        "montag",
        "dienstag",
        "mittwoch",
        "donnerstag",
        "freitag",
        "samstag",
        "sonntag", // German
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo", // Spanish
    ];
    DAYS.contains(&w)
}

/// The month a name stands for, in English (any abbreviation of three
/// letters or more) and the common names of five other languages.
fn month_number(w: &str) -> Option<u32> {
    const EN: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if w.len() >= 3 && w.is_ascii() {
        if let Some(i) = EN.iter().position(|m| m.starts_with(w)) {
            return Some(i as u32 + 1);
        }
        // `Sept`
        if w == "sept" {
            return Some(9);
        }
    }
    const OTHER: &[(&str, u32)] = &[
        // French
        ("janvier", 1),
        ("janv", 1),
        ("février", 2),
        ("fevrier", 2),
        ("févr", 2),
        ("fév", 2),
        ("mars", 3),
        ("avril", 4),
        ("avr", 4),
        ("mai", 5),
        ("juin", 6),
        ("juillet", 7),
        ("juil", 7),
        ("août", 8),
        ("aout", 8),
        ("septembre", 9),
        ("octobre", 10),
        ("novembre", 11),
        ("décembre", 12),
        ("decembre", 12),
        ("déc", 12),
        // German
        ("januar", 1),
        ("jänner", 1),
        ("februar", 2),
        ("märz", 3),
        ("mär", 3),
        ("maerz", 3),
        ("juni", 6),
        ("juli", 7),
        ("oktober", 10),
        ("okt", 10),
        ("dezember", 12),
        ("dez", 12),
        // Spanish
        ("enero", 1),
        ("ene", 1),
        ("febrero", 2),
        ("marzo", 3),
        ("abril", 4),
        ("abr", 4),
        ("mayo", 5),
        ("junio", 6),
        ("julio", 7),
        ("agosto", 8),
        ("ago", 8),
        ("septiembre", 9),
        ("setiembre", 9),
        ("octubre", 10),
        ("noviembre", 11),
        ("diciembre", 12),
        ("dic", 12),
        // Italian
        ("gennaio", 1),
        ("gen", 1),
        ("febbraio", 2),
        ("aprile", 4),
        ("maggio", 5),
        ("mag", 5),
        ("giugno", 6),
        ("giu", 6),
        ("luglio", 7),
        ("lug", 7),
        ("settembre", 9),
        ("set", 9),
        ("ottobre", 10),
        ("ott", 10),
        ("dicembre", 12),
        // Portuguese
        ("janeiro", 1),
        ("fevereiro", 2),
        ("fev", 2),
        ("março", 3),
        ("maio", 5),
        ("junho", 6),
        ("julho", 7),
        ("setembro", 9),
        ("outubro", 10),
        ("out", 10),
        ("novembro", 11),
        ("dezembro", 12),
        // Dutch
        ("januari", 1),
        ("februari", 2),
        ("maart", 3),
        ("mei", 5),
        ("augustus", 8),
        ("okt", 10),
    ];
    OTHER.iter().find(|(n, _)| *n == w).map(|(_, m)| *m)
}

/// An offset in seconds east of UTC: `Z`, `+hh`, `+hhmm`, `+hh:mm`,
/// `+hh:m` (seen), `+h`, `GMT+2`, `UTC-05:00`, `Etc/GMT`, or a zone name.
/// Unknown zone names count as UTC, as feedparser counts them; anything
/// that is not a word or an offset is not a zone.
fn zone(z: &str) -> Option<i64> {
    let z = z.trim();
    let z = z.strip_prefix("Etc/").unwrap_or(z);
    let lower = z.to_ascii_lowercase();
    for prefix in ["gmt", "utc", "ut"] {
        if let Some(rest) = lower.strip_prefix(prefix)
            && rest.starts_with(['+', '-'])
        {
            return offset(rest);
        }
    }
    if z.starts_with(['+', '-']) {
        return offset(z);
    }
    if !z.bytes().all(|b| b.is_ascii_alphabetic()) || z.len() > 5 {
        return None;
    }
    let hours: f64 = match lower.as_str() {
        "z" | "ut" | "utc" | "gmt" | "wet" => 0.0,
        "bst" | "cet" | "met" | "west" | "wat" => 1.0,
        "cest" | "mest" | "eet" | "sast" | "cat" => 2.0,
        "eest" | "msk" | "eat" | "ast3" => 3.0,
        "ist" => 5.5,
        "ict" | "wib" => 7.0,
        "hkt" | "sgt" | "awst" | "pht" => 8.0,
        "jst" | "kst" => 9.0,
        "acst" => 9.5,
        "aest" => 10.0,
        "aedt" => 11.0,
        "nzst" => 12.0,
        "nzdt" => 13.0,
        "nst" => -3.5,
        "adt" => -3.0,
        "ast" | "at" | "edt" => -4.0,
        "est" | "et" | "cdt" => -5.0,
        "cst" | "ct" | "mdt" => -6.0,
        "mst" | "mt" | "pdt" => -7.0,
        "pst" | "pt" | "akdt" => -8.0,
        "akst" => -9.0,
        "hst" => -10.0,
        // RFC 822 military zones, as feedparser reads them.
        "a" => -1.0,
        "n" => 1.0,
        "m" => -12.0,
        "y" => 12.0,
        _ => 0.0,
    };
    Some((hours * 3600.0) as i64)
}

/// `+hh`, `+h`, `+hhmm`, `+hmm`, `+hh:mm`, `+hh:m` → seconds east of UTC.
fn offset(z: &str) -> Option<i64> {
    let sign = if z.starts_with('-') { -1 } else { 1 };
    let body = &z[1..];
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h, m),
        None => match body.len() {
            1 | 2 => (body, "0"),
            3 => (&body[..1], &body[1..]),
            4 => (&body[..2], &body[2..]),
            _ => return None,
        },
    };
    let ok = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    if !ok(h, 2) || !ok(m, 2) {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// A byte cursor over an ASCII-ish date string.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Cursor<'a> {
        Cursor { s, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn bump(&mut self) {
        self.i += 1;
    }

    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.i..).unwrap_or("")
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.bump();
        }
    }

    /// Between `min` and `max` digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i - start < max && self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.bump();
        }
        if self.i - start < min {
            return None;
        }
        self.s[start..self.i].parse().ok()
    }

    /// `h[h][:mm[:ss[.fff]]]` or `hhmm[ss]`: (hours, minutes, seconds, nanoseconds).
    fn time(&mut self) -> Option<(u32, u32, u32, u32)> {
        let start = self.i;
        let h = self.digits(1, 2)?;
        let (mut m, mut s, mut nanos) = (0, 0, 0);
        if self.peek() == Some(b':') {
            self.bump();
            m = self.digits(1, 2)?;
            if self.peek() == Some(b':') {
                self.bump();
                s = self.digits(1, 2)?;
            }
        } else if self.i - start == 2 && self.peek().is_some_and(|b| b.is_ascii_digit()) {
            // Basic format: 0800 or 080000.
            m = self.digits(2, 2)?;
            if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                s = self.digits(2, 2)?;
            }
        }
        if matches!(self.peek(), Some(b'.' | b','))
            && self
                .s
                .as_bytes()
                .get(self.i + 1)
                .is_some_and(u8::is_ascii_digit)
        {
            self.bump();
            let start = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.bump();
            }
            let frac = &self.s[start..self.i];
            let nine: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            nanos = nine.parse().ok()?;
        }
        if h > 24 || m > 59 || s > 60 {
            return None;
        }
        Some((h, m, s, nanos))
    }

    /// An `AM`/`PM` here (after optional spaces): `Some(true)` for PM.
    fn meridian(&mut self) -> Option<bool> {
        let save = self.i;
        self.skip_spaces();
        let rest = self.rest().to_ascii_lowercase();
        for (word, pm) in [("a.m.", false), ("p.m.", true), ("am", false), ("pm", true)] {
            if let Some(after) = rest.strip_prefix(word)
                && !after.starts_with(|c: char| c.is_ascii_alphabetic())
            {
                self.i += word.len();
                return Some(pm);
            }
        }
        self.i = save;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shapes seen in real feeds (and in feedparser's tests), with the
    /// instant each names, in UTC.
    const SHAPES: &[(&str, &str)] = &[
        // RFC 822 / 2822, as specified and as written.
        ("Fri, 20 Nov 2026 12:00:00 +0100", "2026-11-20T11:00:00Z"),
        ("Thu, 07 Apr 2022 18:00:00 GMT", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 GMT", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022 8:00:00 GMT", "2022-04-07T08:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 UTC", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 UT", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 Z", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 -0000", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 +0000", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 EST", "2022-04-07T23:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 EDT", "2022-04-07T22:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 PST", "2022-04-08T02:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 PDT", "2022-04-08T01:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 CST", "2022-04-08T00:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 MST", "2022-04-08T01:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 CET", "2022-04-07T17:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 CEST", "2022-04-07T16:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 BST", "2022-04-07T17:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 IST", "2022-04-07T12:30:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 JST", "2022-04-07T09:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 Etc/GMT", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 GMT+2", "2022-04-07T16:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 GMT-05:00", "2022-04-07T23:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 UTC+05:30", "2022-04-07T12:30:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 +05:30", "2022-04-07T12:30:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 +530", "2022-04-07T12:30:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 +5", "2022-04-07T13:00:00Z"),
        ("Thu, 7 Apr 2022 18:00:00 +00:0", "2022-04-07T18:00:00Z"),
        (
            "Thu, 7 Apr 2022 18:00:00 +0100 (CET)",
            "2022-04-07T17:00:00Z",
        ),
        ("Thu, 7 Apr 2022 18:00:00 XYZ", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022 18:00 GMT", "2022-04-07T18:00:00Z"),
        ("Thu, 7 Apr 2022", "2022-04-07T00:00:00Z"),
        ("7 Apr 2022", "2022-04-07T00:00:00Z"),
        ("7 April 2022", "2022-04-07T00:00:00Z"),
        (
            "Thursday, 7 April 2022 18:00:00 GMT",
            "2022-04-07T18:00:00Z",
        ),
        ("Thurs, 7 Apr 2022 18:00:00 GMT", "2022-04-07T18:00:00Z"),
        ("Tues, 5 Apr 2022 18:00:00 GMT", "2022-04-05T18:00:00Z"),
        ("Wed, 25 Aug 2012 10:00:00 GMT", "2012-08-25T10:00:00Z"),
        ("Fri,24 Nov 2023 18:28:36 -0000", "2023-11-24T18:28:36Z"),
        ("Fri, 24 Nov 2023 18:28:36-0000", "2023-11-24T18:28:36Z"),
        ("Fri, 24 Nov 2023 18:28:36Z", "2023-11-24T18:28:36Z"),
        ("fri, 24 nov 2023 18:28:36 gmt", "2023-11-24T18:28:36Z"),
        ("FRI, 24 NOV 2023 18:28:36 GMT", "2023-11-24T18:28:36Z"),
        ("Fri, 24 Sept 2023 18:28:36 GMT", "2023-09-24T18:28:36Z"),
        ("Fri, 24 Nov. 2023 18:28:36 GMT", "2023-11-24T18:28:36Z"),
        ("Sun, 31 Dec 2023 24:00:00 GMT", "2024-01-01T00:00:00Z"),
        (
            "  Fri, 20 Nov 2026 12:00:00 +0100  ",
            "2026-11-20T11:00:00Z",
        ),
        (
            "Fri,\u{a0}20 Nov 2026 12:00:00 +0100",
            "2026-11-20T11:00:00Z",
        ),
        // Two-digit years.
        ("Thu, 07 Apr 22 18:00:00 GMT", "2022-04-07T18:00:00Z"),
        ("Sun, 06 Nov 94 08:49:37 GMT", "1994-11-06T08:49:37Z"),
        ("07 Apr 89 18:00 GMT", "2089-04-07T18:00:00Z"),
        ("16-Dec-23", "2023-12-16T00:00:00Z"),
        ("16-Dec-2023 14:02", "2023-12-16T14:02:00Z"),
        ("16/Dec/2023:14:02:00 +0000", "2023-12-16T14:02:00Z"),
        // Month first, 12-hour clocks.
        ("Sat, Dec 16 2023 02:02:33 PM", "2023-12-16T14:02:33Z"),
        ("Sat, Dec 16 2023 02:02:33 AM", "2023-12-16T02:02:33Z"),
        ("Sat, Dec 16 2023 12:02:33 AM", "2023-12-16T00:02:33Z"),
        ("Sat, Dec 16 2023 12:02:33 PM", "2023-12-16T12:02:33Z"),
        ("Dec 16, 2023 2:02 PM", "2023-12-16T14:02:00Z"),
        ("December 16, 2023 at 2:02 pm", "2023-12-16T14:02:00Z"),
        ("December 16, 2023 2:02pm EST", "2023-12-16T19:02:00Z"),
        ("December 16th, 2023", "2023-12-16T00:00:00Z"),
        ("Dec 1st 2023 10:00 a.m.", "2023-12-01T10:00:00Z"),
        (
            "Saturday, December 16, 2023 - 14:02",
            "2023-12-16T14:02:00Z",
        ),
        ("Sat Dec 16 14:02:33 2023", "2023-12-16T14:02:33Z"),
        ("Sun Nov  6 08:49:37 1994", "1994-11-06T08:49:37Z"),
        ("Sun Nov 6 08:49:37 UTC 1994", "1994-11-06T08:49:37Z"),
        ("Mon Jan 02 2006 15:04:05 GMT-0700", "2006-01-02T22:04:05Z"),
        (
            "Mon Jan 02 2006 15:04:05 GMT-0700 (Mountain Standard Time)",
            "2006-01-02T22:04:05Z",
        ),
        ("2023-12-16 02:02:33 PM", "2023-12-16T14:02:33Z"),
        // ISO 8601 / W3C-DTF and their relatives.
        ("2026-11-19T03:21:13+02:00", "2026-11-19T01:21:13Z"),
        ("2026-11-19T03:21:13.5+02:00", "2026-11-19T01:21:13.500Z"),
        (
            "2026-11-19T03:21:13.123456789Z",
            "2026-11-19T03:21:13.123456789Z",
        ),
        ("2026-11-19T03:21:13Z", "2026-11-19T03:21:13Z"),
        ("2026-11-19t03:21:13z", "2026-11-19T03:21:13Z"),
        ("2026-11-19T03:21:13+0200", "2026-11-19T01:21:13Z"),
        ("2026-11-19T03:21:13+02", "2026-11-19T01:21:13Z"),
        ("2026-11-19T03:21:13-05:00", "2026-11-19T08:21:13Z"),
        ("2026-11-19T03:21:13+00:0", "2026-11-19T03:21:13Z"),
        ("2026-11-19T03:21:13 +02:00", "2026-11-19T01:21:13Z"),
        ("2026-11-19T03:21:13 GMT", "2026-11-19T03:21:13Z"),
        ("2026-11-19T03:21:13 EST", "2026-11-19T08:21:13Z"),
        ("2026-11-19T03:21:13", "2026-11-19T03:21:13Z"),
        ("2018-01-06T08:00", "2018-01-06T08:00:00Z"),
        ("2018-01-06T08:00Z", "2018-01-06T08:00:00Z"),
        ("2018-01-06T08:00+01:00", "2018-01-06T07:00:00Z"),
        ("2018-01-06T08", "2018-01-06T08:00:00Z"),
        ("2018-01-06 08:00:00", "2018-01-06T08:00:00Z"),
        ("2018-01-06 08:00:00 +0100", "2018-01-06T07:00:00Z"),
        ("2018-01-06 08:00:00.000", "2018-01-06T08:00:00Z"),
        ("2018-01-06 08:00:00,25", "2018-01-06T08:00:00.250Z"),
        ("2018-01-06  8:00", "2018-01-06T08:00:00Z"),
        ("2018-01-06", "2018-01-06T00:00:00Z"),
        ("2018-1-6", "2018-01-06T00:00:00Z"),
        ("2018-01", "2018-01-01T00:00:00Z"),
        ("2018", "2018-01-01T00:00:00Z"),
        ("20180106", "2018-01-06T00:00:00Z"),
        ("20180106T080000Z", "2018-01-06T08:00:00Z"),
        ("20180106T0800+0100", "2018-01-06T07:00:00Z"),
        ("2018/01/06 08:00:00", "2018-01-06T08:00:00Z"),
        ("2018/1/6 8:00:00", "2018-01-06T08:00:00Z"),
        ("2018/1/6", "2018-01-06T00:00:00Z"),
        ("2018.01.06 08:00", "2018-01-06T08:00:00Z"),
        ("2018-01-06T24:00:00Z", "2018-01-07T00:00:00Z"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:60Z"),
        // Numbers only, day or month first.
        ("16.12.2023", "2023-12-16T00:00:00Z"),
        ("16.12.2023 14:02", "2023-12-16T14:02:00Z"),
        ("12/16/2023 2:02:33 PM", "2023-12-16T14:02:33Z"),
        ("16/12/2023", "2023-12-16T00:00:00Z"),
        ("16-12-2023 14:02:00", "2023-12-16T14:02:00Z"),
        // Other languages.
        ("16 décembre 2023", "2023-12-16T00:00:00Z"),
        ("samedi 16 décembre 2023 14:02", "2023-12-16T14:02:00Z"),
        ("16 déc. 2023", "2023-12-16T00:00:00Z"),
        ("1er janvier 2024", "2024-01-01T00:00:00Z"),
        ("16. Dezember 2023 14:02", "2023-12-16T14:02:00Z"),
        ("Sa, 16 Dez 2023 14:02:00 +0100", "2023-12-16T13:02:00Z"),
        ("3. März 2024", "2024-03-03T00:00:00Z"),
        ("16 de diciembre de 2023", "2023-12-16T00:00:00Z"),
        ("sábado, 16 de diciembre de 2023", "2023-12-16T00:00:00Z"),
        ("16 dicembre 2023", "2023-12-16T00:00:00Z"),
        ("16 de dezembro de 2023", "2023-12-16T00:00:00Z"),
        ("16 december 2023", "2023-12-16T00:00:00Z"),
        ("16 mei 2023", "2023-05-16T00:00:00Z"),
    ];

    /// Text that is not a date, or names no real day.
    const NOT_DATES: &[&str] = &[
        "",
        "   ",
        "not a date",
        "yesterday",
        "N/A",
        "0000-00-00 00:00:00",
        "2023-02-30",
        "Thu, 31 Apr 2022 18:00:00 GMT",
        "Thu, 7 Foo 2022 18:00:00 GMT",
        "2022-13-01",
        "2022-04-07T25:00:00Z",
        "Thu, 7 Apr 2022 18:61:00 GMT",
        "Thu, 7 Apr 2022 18:00:00 +99:00",
        "Thu, 7 Apr",
        "1700000000",
        "12345-01-01",
        "<b>2022-04-07</b>",
    ];

    #[test]
    fn real_world_shapes_read_as_their_instant() {
        assert!(SHAPES.len() >= 100, "{} shapes", SHAPES.len());
        let mut wrong = Vec::new();
        for (raw, want) in SHAPES {
            let want = DateTime::parse_from_rfc3339(want)
                .unwrap()
                .with_timezone(&Utc);
            let got = parse_date(raw);
            if got != Some(want) {
                wrong.push(format!("{raw:?}: got {got:?}, want {want}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn non_dates_are_none() {
        for raw in NOT_DATES {
            assert_eq!(parse_date(raw), None, "{raw:?}");
        }
    }
}
