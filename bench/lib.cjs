// The built backend (functions/lib), gathered for the benchmarks. Run `npm run build` first.
const { createApp, createServices } = require("../functions/lib/app.js");
const { loadConfig } = require("../functions/lib/config.js");
const { startFirestoreEmulator } = require("../functions/lib/local/firestore-emulator.js");
const { newId } = require("../functions/lib/shared/ids.js");
const { attachRelay } = require("../functions/lib/relay/relay.js");

module.exports = { createApp, createServices, loadConfig, startFirestoreEmulator, newId, attachRelay };
