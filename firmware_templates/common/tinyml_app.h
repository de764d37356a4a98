/* The application's entry point: each firmware family's start-up code calls it. */
#ifndef TINYML_APP_H
#define TINYML_APP_H

/* Serve the device protocol (or run mode) until an EXIT; returns the exit code. */
int tinyml_main(void);

#endif
