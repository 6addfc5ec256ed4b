//! Ids kept as Arrow string views: 16 bytes holding the length and up to 12 bytes inline, or
//! the length, a 4-byte prefix and an offset into one buffer of longer ids. The tables that
//! look ids up millions of times per query (the user-bucket operator's groups, the persons of
//! merged ids) compare an id as one integer for short ids, without following a pointer.

use datafusion::arrow::array::{make_view, MAX_INLINE_VIEW_LEN};

/// The view of `id`, its bytes appended to `long_ids` when they do not fit inline.
pub fn id_view(id: &[u8], long_ids: &mut Vec<u8>) -> u128 {
    if id.len() <= MAX_INLINE_VIEW_LEN as usize {
        return make_view(id, 0, 0);
    }
    let offset = u32::try_from(long_ids.len()).expect("under 4 GiB of long ids");
    long_ids.extend_from_slice(id);
    make_view(id, 0, offset)
}

/// The view `id` is compared by: [`id_view`]'s for a short id; for a long one, its length and
/// prefix (the low 64 bits), with offset 0.
pub fn probe_view(id: &[u8]) -> u128 {
    make_view(id, 0, 0)
}

/// Whether `view` (of [`id_view`], over `long_ids`) is `id`, whose [`probe_view`] is `probe`.
pub fn view_is(view: u128, id: &[u8], probe: u128, long_ids: &[u8]) -> bool {
    if id.len() <= MAX_INLINE_VIEW_LEN as usize {
        // Length and bytes, zero-padded: one compare.
        view == probe
    } else {
        // Length and 4-byte prefix first, in the view's low 64 bits.
        view as u64 == probe as u64 && view_bytes(&view, long_ids) == id
    }
}

// An inline view's bytes follow its 4-byte length in memory on little-endian machines only.
const _: () = assert!(cfg!(target_endian = "little"), "inline string views are read as little-endian");

/// The bytes of the id `view` holds (inline, or in `long_ids` at its offset).
pub fn view_bytes<'a>(view: &'a u128, long_ids: &'a [u8]) -> &'a [u8] {
    let len = *view as u32 as usize;
    if len <= MAX_INLINE_VIEW_LEN as usize {
        // The bytes after the length, in memory (as Arrow's own `inline_value` reads them).
        return &bytemuck::bytes_of(view)[4..4 + len];
    }
    let offset = (*view >> 96) as u32 as usize;
    &long_ids[offset..offset + len]
}
