//! Order-preserving key encoding: comparing two encoded keys as bytes gives the order of the keys,
//! so the engine sorts and merges without knowing the job's types.
//!
//! Each key type encodes alone (a key is never concatenated with another), so byte strings and
//! strings are their own bytes; integers are big-endian, signed ones with the sign bit flipped.

use crate::JobError;

/// Something that can be written as key bytes. Unsized forms (`[u8]`, `str`) let a mapper emit a
/// borrowed key without allocating.
pub trait KeyEncode {
    /// Appends the key's bytes to `out`; bytes compare as the keys do.
    fn encode_key(&self, out: &mut Vec<u8>);
}

/// A key type: encodes in order and decodes back.
pub trait Key: KeyEncode + Sized + Send + 'static {
    /// The key `bytes` (from [`KeyEncode::encode_key`]) encode.
    fn decode_key(bytes: &[u8]) -> Result<Self, JobError>;
}

impl KeyEncode for [u8] {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl KeyEncode for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Key for Vec<u8> {
    fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
        Ok(bytes.to_vec())
    }
}

impl KeyEncode for str {
    fn encode_key(&self, out: &mut Vec<u8>) {
        // UTF-8 byte order is code point order.
        out.extend_from_slice(self.as_bytes());
    }
}

impl KeyEncode for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Key for String {
    fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| JobError::KeyDecode {
            reason: format!("not UTF-8: {e}"),
        })
    }
}

fn fixed<const N: usize>(bytes: &[u8], type_name: &str) -> Result<[u8; N], JobError> {
    bytes.try_into().map_err(|_| JobError::KeyDecode {
        reason: format!("{type_name} key needs {N} bytes, got {}", bytes.len()),
    })
}

macro_rules! unsigned_key {
    ($($t:ty),*) => {$(
        impl KeyEncode for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Key for $t {
            fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
                Ok(<$t>::from_be_bytes(fixed(bytes, stringify!($t))?))
            }
        }
    )*};
}

macro_rules! signed_key {
    ($($t:ty => $u:ty),*) => {$(
        impl KeyEncode for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                // Flipping the sign bit puts negatives before positives in unsigned order.
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
        }
        impl Key for $t {
            fn decode_key(bytes: &[u8]) -> Result<Self, JobError> {
                let flipped = <$u>::from_be_bytes(fixed(bytes, stringify!($t))?);
                Ok((flipped ^ (1 << (<$u>::BITS - 1))) as $t)
            }
        }
    )*};
}

unsigned_key!(u8, u16, u32, u64);
signed_key!(i32 => u32, i64 => u64);

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded<K: KeyEncode + ?Sized>(key: &K) -> Vec<u8> {
        let mut out = Vec::new();
        key.encode_key(&mut out);
        out
    }

    #[test]
    fn signed_integers_sort_by_value_as_bytes() {
        let values = [i64::MIN, -1_000, -1, 0, 1, 7, 1_000, i64::MAX];
        let bytes: Vec<Vec<u8>> = values.iter().map(encoded).collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]));
        for (v, b) in values.iter().zip(&bytes) {
            assert_eq!(i64::decode_key(b).unwrap(), *v);
        }
    }

    #[test]
    fn unsigned_integers_sort_by_value_as_bytes() {
        let values = [0u32, 1, 255, 256, 65_536, u32::MAX];
        let bytes: Vec<Vec<u8>> = values.iter().map(encoded).collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(u32::decode_key(&bytes[3]).unwrap(), 256);
    }

    #[test]
    fn strings_sort_by_code_point() {
        let words = ["", "A", "Z", "a", "ab", "b", "é", "中"];
        let bytes: Vec<Vec<u8>> = words.iter().map(|w| encoded(*w)).collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(String::decode_key(&bytes[6]).unwrap(), "é");
    }

    #[test]
    fn short_integer_key_is_an_error() {
        let err = u64::decode_key(&[1, 2, 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot decode a key: u64 key needs 8 bytes, got 3"
        );
    }
}
