/* The device's secret for authenticated frames (AUTH_HELLO, AUTH_RESULT; docs/security.md).
 * This project has none: its device speaks unauthenticated, which a gateway accepts only on ports
 * whose policy is "optional". `tinyml provision FW --keys FILE` writes the key here (mode 600)
 * and records it in the gateway's key store; build again after it. */
#ifndef TINYML_DEVICE_KEY_H
#define TINYML_DEVICE_KEY_H

#define TINYML_DEVICE_KEY_SET 0

#endif
