//! Random identifiers and secrets from the operating system's CSPRNG.

use base64::Engine;

use crate::error::{Error, Result};

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::internal(std::io::Error::other(e.to_string())))?;
    Ok(bytes)
}

/// `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let raw = random_bytes::<64>()?;
    Ok(raw[..bytes.min(64)]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A 256-bit secret, URL-safe base64 without padding (43 characters).
pub(crate) fn random_secret() -> Result<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// A random (version 4) UUID: 122 random bits, no creation time inside.
pub(crate) fn random_uuid() -> Result<String> {
    Ok(uuid::Builder::from_random_bytes(random_bytes::<16>()?)
        .into_uuid()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(random_hex(16).unwrap().len(), 32);
        assert_eq!(random_secret().unwrap().len(), 43);
        let id = uuid::Uuid::parse_str(&random_uuid().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 4);
        assert_ne!(random_secret().unwrap(), random_secret().unwrap());
    }
}
