// Constants shared by the WebAssembly core (assembly/) and the TypeScript side (src/).
//
// This file is compiled twice: by AssemblyScript into the WASM module and by tsc into
// the JavaScript package. Keep it to plain integer literals so both compilers read it
// the same way (AssemblyScript infers i32 for each of them).

// Status codes returned by both cores' step functions. A step returns a count or an id
// (never negative: ids keep the sign bit clear) on success, and one of these on refusal.
export const STATUS_CLOCK_BEHIND = -1; // logical time would run further ahead of the clock than maxLeadMs
export const STATUS_CLOCK_BEFORE_EPOCH = -2; // the clock reads earlier than the layout's epoch
export const STATUS_LAYOUT_EXPIRED = -3; // the next tick does not fit the layout's time field
export const STATUS_LIMIT_REACHED = -4; // the next tick is beyond the limit (the durable reservation)
export const STATUS_CLOCK_INVALID = -5; // the clock returned NaN, an infinity or an absurd value
export const STATUS_CLOSED = -6; // the node was closed (never returned by a core)

// The most ids one WASM fill call writes into its static output region (8 bytes each).
// Larger requests are served in several calls by the TypeScript wrapper.
export const FILL_BATCH_MAX = 1024;

// Clock readings outside ±MAX_CLOCK_MS are refused as invalid: it is the range of a
// JavaScript Date, and it keeps every tick an exact integer in a float64.
export const MAX_CLOCK_MS = 8640000000000000;

// Field widths are carried as 32-bit integers in both cores and on the wire.
export const MAX_NODE_BITS = 31;
export const MAX_SEQUENCE_BITS = 31;
export const MAX_TOTAL_BITS = 63;
