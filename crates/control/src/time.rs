//! Time as ECS reports it.

/// A timestamp as ECS reports it: epoch seconds with millisecond precision.
///
/// Stored records are JSON, and serde_json (without its `float_roundtrip` feature) may read a
/// float with full microsecond digits back one ULP off, so a definition described after it was
/// stored would not carry the timestamp RegisterTaskDefinition returned. A value rounded to
/// milliseconds reads back exactly.
pub fn timestamp(now: f64) -> f64 {
    (now * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_survive_a_json_round_trip() {
        for now in [
            1_795_571_145.520_174_f64,
            1_704_164_645.678_9,
            1.0e9 + 0.000_4,
        ] {
            let t = timestamp(now);
            assert!((t - now).abs() <= 0.000_5);
            let back: f64 = serde_json::from_slice(&serde_json::to_vec(&t).unwrap_or_default())
                .unwrap_or(f64::NAN);
            assert_eq!(back.to_bits(), t.to_bits());
        }
    }
}
