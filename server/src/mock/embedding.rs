//! Deterministic embedding vectors: a hash of the input seeds a generator; the vector is
//! normalised to unit length (so every value lies in [-1, 1]).

use base64::{engine::general_purpose::STANDARD, Engine as _};

/// Dimensions when the request names none.
pub(super) const DEFAULT_DIMENSIONS: usize = 8;
/// Largest `dimensions` accepted.
pub(super) const MAX_DIMENSIONS: usize = 65_536;

/// The unit vector for `input` (text bytes, or token ids as little-endian bytes).
pub(super) fn vector(input: &[u8], dimensions: usize) -> Vec<f32> {
    let mut state = fnv1a(input);
    let mut values: Vec<f64> = (0..dimensions)
        .map(|_| {
            let bits = splitmix64(&mut state) >> 11;
            (bits as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|v| *v /= norm);
    } else if let Some(first) = values.first_mut() {
        *first = 1.0;
    }
    values.into_iter().map(|v| v as f32).collect()
}

/// The OpenAI `encoding_format: "base64"` form: standard base64 of little-endian f32 bytes.
pub(super) fn to_base64(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_unit_and_distinct() {
        let a = vector(b"hello", 16);
        assert_eq!(a, vector(b"hello", 16));
        assert_ne!(a, vector(b"hellp", 16));
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(vector(b"x", 1).first().map(|v| v.abs()), Some(1.0));
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let encoded = to_base64(&[1.0, -2.5]);
        let bytes = STANDARD.decode(encoded).unwrap();
        let back: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(back, [1.0, -2.5]);
    }
}
