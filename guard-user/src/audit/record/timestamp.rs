//! `ts`: written in UTC with exactly nine fractional digits, so records sort as strings;
//! read as any RFC 3339 timestamp.

use serde::{Deserialize, Deserializer, Serializer};
use time::{
    format_description::{well_known::Rfc3339, FormatItem},
    macros::format_description,
    OffsetDateTime, UtcOffset,
};

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

pub fn format(ts: OffsetDateTime) -> String {
    ts.to_offset(UtcOffset::UTC)
        .format(FORMAT)
        .expect("every UTC time in years 0..=9999 formats")
}

pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339).map(|t| t.to_offset(UtcOffset::UTC))
}

pub fn serialize<S: Serializer>(ts: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*ts))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(|e| serde::de::Error::custom(format!("ts '{s}': {e}")))
}
