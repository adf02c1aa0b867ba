/* pglite_harness.h (placeholder: being written) */
