//! Labels and annotations as a cache keeps them: one allocation per map.

use std::collections::BTreeMap;

/// Keys that many objects carry (the controller's own annotations), each kept in a cached
/// map as one byte; at most [`Known::MAX`].
#[derive(Debug, Default)]
pub(in crate::runtime) struct Known(Vec<Box<str>>);

impl Known {
    /// Keys past this many are kept as text.
    const MAX: usize = 255;
    /// The tag of a key kept as text.
    const TEXT: u8 = 255;

    /// The table of `keys`, in this order; the keys past [`Known::MAX`] are left out.
    pub(in crate::runtime) fn new<'k>(keys: impl IntoIterator<Item = &'k str>) -> Self {
        Known(keys.into_iter().take(Self::MAX).map(Box::from).collect())
    }

    fn tag(&self, key: &str) -> Option<u8> {
        let i = self.0.iter().position(|k| &**k == key)?;
        u8::try_from(i).ok()
    }
}

/// Labels or annotations in one allocation: for each entry in the map's order (sorted by
/// key), the key as the one-byte tag of a [`Known`] key or as text, then the value as text;
/// text is its length (4 bytes, little-endian) and its bytes. `None` is no map at all, as
/// distinct from an empty one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Fields(Option<Box<[u8]>>);

impl Fields {
    pub(super) fn take(map: &mut Option<BTreeMap<String, String>>, known: &Known) -> Self {
        let Some(map) = map.take() else {
            return Fields(None);
        };
        let mut bytes = Vec::new();
        let text = |bytes: &mut Vec<u8>, s: &str| {
            // An object's metadata is far below 4 GiB: the API server limits a whole object to
            // a few MiB.
            let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(s.as_bytes());
        };
        for (k, v) in &map {
            match known.tag(k) {
                Some(tag) => bytes.push(tag),
                None => {
                    bytes.push(Known::TEXT);
                    text(&mut bytes, k);
                }
            }
            text(&mut bytes, v);
        }
        Fields(Some(bytes.into_boxed_slice()))
    }

    pub(super) fn to_map(&self, known: &Known) -> Option<BTreeMap<String, String>> {
        let mut rest: &[u8] = self.0.as_deref()?;
        let mut take = |n: usize| -> &[u8] {
            let (head, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            head
        };
        let mut map = BTreeMap::new();
        loop {
            let Some(&tag) = take(1).first() else {
                return Some(map);
            };
            let mut text = || {
                let len = take(4).try_into().map_or(0, u32::from_le_bytes);
                String::from_utf8_lossy(take(len as usize)).into_owned()
            };
            let key = match known.0.get(usize::from(tag)) {
                Some(k) if tag != Known::TEXT => k.to_string(),
                _ => text(),
            };
            map.insert(key, text());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_annotations_read_back_as_they_were() {
        let maps = [
            None,
            Some(BTreeMap::new()),
            Some(
                [
                    ("a".to_owned(), String::new()),
                    (String::new(), "x".to_owned()),
                    ("é/ü".to_owned(), "ß\0ok".to_owned()),
                ]
                .into(),
            ),
        ];
        let known = Known::new(["a", "b"]);
        for map in maps {
            assert_eq!(Fields::take(&mut map.clone(), &known).to_map(&known), map);
        }
    }
}
