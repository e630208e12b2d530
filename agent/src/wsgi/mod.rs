//! The WSGI layer (to be built: issue 4).
