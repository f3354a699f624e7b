//! LL-HLS packager.
