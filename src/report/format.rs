//! Numbers, dates and weeks as each language writes them (the report and
//! its tests; docs/report.md).

use chrono::{Datelike, NaiveDate};

pub use vigie_analyze::catalogue::number;

const MONTHS_FR: [&str; 12] =
    ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."];
const MONTHS_FR_FULL: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A share as a percentage: `12 %` (French, narrow no-break space) or
/// `12%` (English), at most one decimal.
pub fn percent(share: f64, lang: &str) -> String {
    let p = (share * 1000.0).round() / 10.0;
    if lang == "fr" {
        format!("{}\u{202f}%", number(p, lang))
    } else {
        format!("{}%", number(p, lang))
    }
}

/// `2 mars 2026` / `2 March 2026` (`1er` for the first of a month in
/// French).
pub fn date(d: NaiveDate, lang: &str) -> String {
    let m = d.month0() as usize;
    if lang == "fr" {
        let day = if d.day() == 1 { "1er".to_string() } else { d.day().to_string() };
        format!("{day} {} {}", MONTHS_FR_FULL[m], d.year())
    } else {
        format!("{} {} {}", d.day(), MONTHS_EN[m], d.year())
    }
}

/// A short date for tight places: `2 mars` / `2 Mar`.
pub fn short_date(d: NaiveDate, lang: &str) -> String {
    let m = d.month0() as usize;
    if lang == "fr" {
        format!("{} {}", d.day(), MONTHS_FR[m])
    } else {
        format!("{} {}", d.day(), &MONTHS_EN[m][..3])
    }
}

/// A period: `du 2 mars au 10 avril 2026`, `du 2 au 8 mars 2026`,
/// `du 28 décembre 2025 au 3 janvier 2026`; `from 2 March to 10 April
/// 2026`.
pub fn range(from: NaiveDate, to: NaiveDate, lang: &str) -> String {
    let fr = lang == "fr";
    let (a, b) = (date(from, lang), date(to, lang));
    let head = if from.year() != to.year() {
        a
    } else if from.month() != to.month() {
        // Drop the year from the first date.
        a.rsplit_once(' ').map(|(x, _)| x.to_string()).unwrap_or(a)
    } else {
        if fr && from.day() == 1 {
            "1er".to_string()
        } else {
            from.day().to_string()
        }
    };
    if fr {
        format!("du {head} au {b}")
    } else {
        format!("from {head} to {b}")
    }
}

/// The Monday of an ISO week label (`2026-W10`).
pub fn week_monday(label: &str) -> Option<NaiveDate> {
    let (y, w) = label.split_once("-W")?;
    NaiveDate::from_isoywd_opt(y.parse().ok()?, w.parse().ok()?, chrono::Weekday::Mon)
}

/// `semaine 10 (du 2 au 8 mars 2026)` / `week 10 (from 2 to 8 March
/// 2026)`; other labels unchanged.
pub fn week(label: &str, lang: &str) -> String {
    let Some(monday) = week_monday(label) else { return label.to_string() };
    let n = monday.iso_week().week();
    let sunday = monday + chrono::Duration::days(6);
    let word = if lang == "fr" { "semaine" } else { "week" };
    format!("{word} {n} ({})", range(monday, sunday, lang))
}

/// A value of a finding's facts made readable: ISO weeks and dates as the
/// language writes them, anything else unchanged.
pub fn label(text: &str, lang: &str) -> String {
    if week_monday(text).is_some() {
        return week(text, lang);
    }
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(d) => date(d, lang),
        Err(_) => text.to_string(),
    }
}

/// An RFC 3339 instant (UTC) as a date.
pub fn instant_date(text: &str) -> Option<NaiveDate> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn golden_numbers_dates_and_weeks() {
        assert_eq!(number(3_784_577.0, "fr"), "3\u{202f}784\u{202f}577");
        assert_eq!(number(3_784_577.0, "en"), "3,784,577");
        assert_eq!(number(0.12, "fr"), "0,12");
        assert_eq!(percent(0.12, "fr"), "12\u{202f}%");
        assert_eq!(percent(0.125, "en"), "12.5%");
        assert_eq!(date(d(2026, 3, 2), "fr"), "2 mars 2026");
        assert_eq!(date(d(2026, 4, 1), "fr"), "1er avril 2026");
        assert_eq!(date(d(2026, 3, 2), "en"), "2 March 2026");
        assert_eq!(range(d(2026, 3, 2), d(2026, 4, 10), "fr"), "du 2 mars au 10 avril 2026");
        assert_eq!(range(d(2026, 3, 2), d(2026, 3, 8), "fr"), "du 2 au 8 mars 2026");
        assert_eq!(range(d(2025, 12, 29), d(2026, 1, 4), "fr"), "du 29 décembre 2025 au 4 janvier 2026");
        assert_eq!(range(d(2026, 3, 2), d(2026, 4, 10), "en"), "from 2 March to 10 April 2026");
        assert_eq!(week("2026-W10", "fr"), "semaine 10 (du 2 au 8 mars 2026)");
        assert_eq!(week("2026-W10", "en"), "week 10 (from 2 to 8 March 2026)");
        assert_eq!(week("all", "fr"), "all");
        assert_eq!(label("2026-03-03", "fr"), "3 mars 2026");
        assert_eq!(label("lyon-1", "fr"), "lyon-1");
        assert_eq!(short_date(d(2026, 3, 2), "en"), "2 Mar");
    }
}
