//! How a report is written: JSON or CSV (RFC 4180: comma-separated, CRLF line ends, a field
//! with a comma, a quote or a line break quoted, quotes doubled; one header line, the columns
//! in a fixed order per report), amounts as exact decimal strings in their currency's precision
//! (from integers of minor units, never through a float), dates as UTC `YYYY-MM-DD`.

use axum::Json;
use axum::http::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The CSV media type.
pub(crate) const CSV_MEDIA_TYPE: &str = "text/csv; charset=utf-8";
/// Days between 0000-03-01 and 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_SHIFT_DAYS: i64 = 719_468;
/// Days in a 400-year era.
const ERA_DAYS: i64 = 146_097;
/// The first and last years a date may name: from the Unix epoch to well within what Unix
/// nanoseconds hold in a `u64` (2554).
const YEAR_MIN: i64 = 1970;
const YEAR_MAX: i64 = 2500;

/// The report's representation: `json` (the default) or `csv`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// `application/json`.
    Json,
    /// `text/csv` (RFC 4180), with a header line.
    Csv,
}

impl Format {
    /// `format` when given, else CSV when `Accept` names `text/csv`, else JSON.
    pub(crate) fn wanted(format: Option<Format>, headers: &HeaderMap) -> Format {
        format.unwrap_or_else(|| {
            let accepts_csv = headers
                .get(ACCEPT)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| {
                    value.split(',').any(|range| {
                        let media = range.split(';').next().unwrap_or_default();
                        media.trim().eq_ignore_ascii_case("text/csv")
                    })
                });
            if accepts_csv {
                Format::Csv
            } else {
                Format::Json
            }
        })
    }
}

/// A report that is also a table: its CSV form.
pub(crate) trait Tabular {
    /// The download's file name, without `.csv`.
    const NAME: &'static str;
    /// The header line's columns, in their fixed order.
    const COLUMNS: &'static [&'static str];
    /// The rows, each with one field per column.
    fn rows(&self) -> Vec<Vec<String>>;
}

/// `report` as JSON or CSV.
pub(crate) fn reply<T: Serialize + Tabular>(format: Format, report: T) -> Response {
    match format {
        Format::Json => Json(report).into_response(),
        Format::Csv => {
            let text = csv(T::COLUMNS, &report.rows());
            let disposition = format!("attachment; filename=\"{}.csv\"", T::NAME);
            let mut response = text.into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(CSV_MEDIA_TYPE));
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(CONTENT_DISPOSITION, value);
            }
            response
        }
    }
}

/// The CSV text of `rows` under `columns`.
pub(crate) fn csv(columns: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    line(&mut out, columns.iter().copied());
    for row in rows {
        assert_eq!(row.len(), columns.len(), "a row has one field per column");
        line(&mut out, row.iter().map(String::as_str));
    }
    out
}

fn line<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (index, field) in fields.enumerate() {
        if index > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

/// `units` minor units with `precision` decimals, e.g. `(150, 2)` is `1.50`.
pub(crate) fn decimal(units: u128, precision: u32) -> String {
    signed_decimal(false, units, precision)
}

/// `units` with `precision` decimals, `-` first when `negative` and not zero.
pub(crate) fn signed_decimal(negative: bool, units: u128, precision: u32) -> String {
    let digits = units.to_string();
    let sign = if negative && units > 0 { "-" } else { "" };
    let places = usize::try_from(precision).unwrap_or(usize::MAX);
    if places == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = places.saturating_add(1));
    let (whole, fraction) = padded.split_at(padded.len() - places);
    format!("{sign}{whole}.{fraction}")
}

/// An optional field: empty in CSV when absent.
pub(crate) fn or_empty<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

/// Days since 1970-01-01 of the UTC date `text` (`YYYY-MM-DD`, years 1970 to 2500), or why
/// not.
pub(crate) fn parse_date(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}`: expected a date YYYY-MM-DD from {YEAR_MIN} to {YEAR_MAX}");
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().map_err(|_| bad());
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(YEAR_MIN..=YEAR_MAX).contains(&year) || !(1..=12).contains(&month) || day < 1 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    // A day past the month's end lands in the next month: the round trip tells.
    if civil_from_days(days) != (year, month, day) {
        return Err(bad());
    }
    u64::try_from(days).map_err(|_| bad())
}

/// The UTC date `days` after 1970-01-01, as `YYYY-MM-DD`.
pub(crate) fn date_text(days: u64) -> String {
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX / 2));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * ERA_DAYS + day_of_era - EPOCH_SHIFT_DAYS
}

/// The date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + EPOCH_SHIFT_DAYS;
    let era = shifted.div_euclid(ERA_DAYS);
    let day_of_era = shifted - era * ERA_DAYS;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimals_in_their_precision() {
        assert_eq!(decimal(150, 2), "1.50");
        assert_eq!(decimal(2, 8), "0.00000002");
        assert_eq!(decimal(0, 2), "0.00");
        assert_eq!(decimal(42, 0), "42");
        assert_eq!(signed_decimal(true, 5, 3), "-0.005");
        assert_eq!(signed_decimal(true, 0, 1), "0.0");
        assert_eq!(
            decimal(u128::MAX, 18),
            "340282366920938463463.374607431768211455"
        );
    }

    #[test]
    fn fields_with_separators_or_quotes_are_quoted() {
        let text = csv(
            &["a", "b"],
            &[
                vec!["1,5".to_owned(), "say \"hi\"".to_owned()],
                vec!["x\ny".to_owned(), "plain".to_owned()],
            ],
        );
        assert_eq!(
            text,
            "a,b\r\n\"1,5\",\"say \"\"hi\"\"\"\r\n\"x\ny\",plain\r\n"
        );
    }

    #[test]
    fn dates_round_trip_and_impossible_ones_are_refused() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2000-03-01"), Ok(11_017));
        assert_eq!(
            parse_date("2024-02-29").map(date_text),
            Ok("2024-02-29".to_owned())
        );
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "1969-12-31",
            "2024-1-01",
            "x",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        for days in [0, 59, 365, 10_956, 20_000, 150_000] {
            assert_eq!(parse_date(&date_text(days)), Ok(days));
        }
    }

    #[test]
    fn csv_is_chosen_by_parameter_or_accept_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::wanted(None, &headers), Format::Json);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("text/html, text/csv;q=0.9"),
        );
        assert_eq!(Format::wanted(None, &headers), Format::Csv);
        assert_eq!(Format::wanted(Some(Format::Json), &headers), Format::Json);
    }
}
