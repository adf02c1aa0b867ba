/* store_suite.h (placeholder: being written) */
