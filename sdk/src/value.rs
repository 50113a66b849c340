//! The value codec: serde + bincode 2 with its standard (varint) configuration. Every value that
//! crosses a stage boundary goes through [`encode_value`] and [`decode_value`], so the codec can
//! be swapped here alone.

use crate::JobError;
use serde::{Serialize, de::DeserializeOwned};

/// A value type: anything serde can carry (and clone: map-side combining keeps values).
///
/// Your own type is a value once it derives serde's traits, through the SDK's re-export (no
/// serde dependency of your own):
///
/// ```
/// use quern_sdk::serde::{Deserialize, Serialize};
/// use quern_sdk::value::{decode_value, encode_value};
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// #[serde(crate = "quern_sdk::serde")]
/// struct Stats { count: u64, highest: i64 }
///
/// fn is_value<V: quern_sdk::Value>() {}
/// is_value::<Stats>();
///
/// // How it travels from map to reduce:
/// let mut bytes = Vec::new();
/// encode_value(&Stats { count: 2, highest: -3 }, &mut bytes)?;
/// assert_eq!(decode_value::<Stats>(&bytes)?, Stats { count: 2, highest: -3 });
/// # Ok::<(), quern_sdk::JobError>(())
/// ```
pub trait Value: Serialize + DeserializeOwned + Clone + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + 'static> Value for T {}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends the encoding of `value` to `out`.
pub fn encode_value<V: Serialize + ?Sized>(value: &V, out: &mut Vec<u8>) -> Result<(), JobError> {
    bincode::serde::encode_into_std_write(value, out, config()).map_err(JobError::ValueEncode)?;
    Ok(())
}

/// Decodes one value that fills `bytes`.
pub fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, JobError> {
    let (value, _read) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(JobError::ValueDecode)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let mut out = Vec::new();
        encode_value(&(42u64, "x".to_string()), &mut out).unwrap();
        let back: (u64, String) = decode_value(&out).unwrap();
        assert_eq!(back, (42, "x".to_string()));
    }

    #[test]
    fn truncated_value_is_an_error() {
        let mut out = Vec::new();
        encode_value(&"hello".to_string(), &mut out).unwrap();
        assert!(decode_value::<String>(&out[..3]).is_err());
    }
}
