//! The pure core: the mapping spec, JSON and number handling, column values,
//! explode/reconstruct and schedules. Nothing here does I/O or knows the
//! database driver; everything is unit- and property-tested in place.

pub(crate) mod census;
pub(crate) mod explode;
pub(crate) mod fixup;
pub(crate) mod id;
pub(crate) mod json;
pub(crate) mod number;
pub(crate) mod schedule;
pub(crate) mod spec;
pub(crate) mod value;
