// The two-user demo: every call goes through the typed client (/client, built from client/src) and
// every secret stays in this page's Web Crypto keys (crypto.js).
import { approveDeviceLink, connectRealtime, createApiClient, deviceLinkCode, emitChecked, requestDeviceLink } from "/client/index.js";
import * as e2e from "/crypto.js";

/** What the scripted run sends; test/demo.test.ts looks for exactly these. */
export const SCRIPT = {
  aliceToBob: "Hello Bob! Only you can read this: the server sees ciphertext.",
  bobToAlice: "Hi Alice, read you loud and clear (sent over the socket).",
  file: { name: "meeting-notes.txt", text: "Meeting at noon, room 4.\nBring the keys, not the locks.\n" },
  disappearing: "This one disappears: from both screens and from the server, a few seconds from now.",
  onceFile: { name: "one-time-code.txt", text: "4 8 15 16 23 42\nThe server deletes this file once Bob has downloaded it.\n" },
  toBothDevices: "Alice, this reaches both of your devices: the second one was linked end to end.",
};

/** How long the ephemeral part's messages live: the least the contract allows. */
const DISAPPEAR_SECONDS = 5;

const api = createApiClient({ baseUrl: `${location.origin}/api` });
const $ = (selector, root = document) => root.querySelector(selector);
const statusLine = $("#status");
const runButton = $("#run");

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

const short = (text, length = 96) => (text.length > length ? `${text.slice(0, length)}…` : text);
const randomSuffix = () => e2e.toBase64(crypto.getRandomValues(new Uint8Array(4))).replace(/[^A-Za-z0-9]/g, "").slice(0, 6).toLowerCase();

/** One user of the demo: their keys, their API client and socket, and their half of the page. */
class Person {
  /** `device`: the panel's id and title of a further device of the same person ("alice-2", "Alice — second device"). */
  constructor(name, device) {
    this.name = name;
    this.panel = $("#user-panel").content.firstElementChild.cloneNode(true);
    this.panel.id = device?.id ?? name.toLowerCase();
    $(".name", this.panel).textContent = device?.title ?? name;
    $("#users").append(this.panel);
    this.events = new EventTarget();
    this.ephemerals = new Map(); // exchangeId → my ephemeral key, until the exchange completes
    this.decrypted = new Map(); // message id (or file id) → plaintext, for the server-copy table
    this.fileOf = new Map(); // message id of a file announcement → file id
  }

  /** Runs one step, listed in the person's panel with its outcome. */
  async step(label, action) {
    const item = document.createElement("li");
    item.textContent = label;
    item.dataset.state = "running";
    $(".steps", this.panel).append(item);
    try {
      const result = await action();
      item.dataset.state = "done";
      return result;
    } catch (error) {
      item.dataset.state = "failed";
      item.append(` — ${error.code ? `${error.code}: ` : ""}${error.message}`);
      throw error;
    }
  }

  next(eventName, timeoutMs = 15_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${eventName} within ${timeoutMs / 1000} s`)), timeoutMs);
      this.events.addEventListener(eventName, (event) => (clearTimeout(timer), resolve(event.detail)), { once: true });
    });
  }

  emit(eventName, detail) {
    this.events.dispatchEvent(new CustomEvent(eventName, { detail }));
  }

  async createKeys() {
    this.identity = await e2e.newIdentity();
    $(".identity", this.panel).textContent = `ECDSA P-256 · ${this.identity.fingerprint}`;
    $(".identity", this.panel).dataset.fingerprint = this.identity.fingerprint;
  }

  async register() {
    const username = `${this.name.toLowerCase()}_${randomSuffix()}`;
    // Kept so that a second device can log in as the same person.
    this.credentials = { email: `${username}@example.com`, password: crypto.randomUUID() };
    const answer = await api.register({ ...this.credentials, username, publicKey: this.identity.publicKeyPem, deviceName: "Demo, first device" });
    this.user = answer.user;
    this.api = api.withToken(answer.token);
    $(".user-id", this.panel).textContent = `${answer.user.username} · ${answer.user.id}`;
  }

  /**
   * Checks a user's key against the key-transparency log with the typed client (verifyUserKey): signed
   * head, inclusion of every binding, the key being the newest, consistency from the last head this
   * person kept. A key registered a moment ago is merged within seconds: "pending" is retried.
   * (A real app pins the log key at build time; this page trusts the first one it fetches.)
   */
  async verifyKeyInLog(userId, publicKey) {
    for (let attempt = 0; ; attempt++) {
      try {
        const verified = await this.api.verifyUserKey(userId, { publicKey, logKey: this.logKey, trustedHead: this.trustedHead });
        this.logKey = verified.logKey;
        this.trustedHead = verified.head;
        return verified;
      } catch (error) {
        if (!["pending", "not_in_log"].includes(error.reason) || attempt >= 40) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  /** The person's own key, as the log shows it to everyone: a key they never registered would show here. */
  async verifyOwnKey() {
    const verified = await this.verifyKeyInLog(this.user.id, this.identity.publicKeyPem);
    const line = $(".key-verified", this.panel);
    line.textContent = `✓ key verified in log of ${verified.head.treeSize} entries`;
    line.dataset.treeSize = String(verified.head.treeSize);
    line.hidden = false;
  }

  async connect() {
    this.socket = await connectRealtime(window.io, location.origin, { token: this.api.token, transports: ["websocket"] });
    this.socket.on("key_exchange_request", (event, ack) => {
      ack();
      this.onKeyExchangeRequest(event).catch((error) => this.emit("failure", error));
    });
    this.socket.on("key_exchange_response", (event, ack) => {
      ack();
      this.onKeyExchangeResponse(event).catch((error) => this.emit("failure", error));
    });
    this.socket.on("message_received", (record, ack) => {
      ack();
      this.onMessage(record).catch((error) => this.emit("failure", error));
    });
    this.socket.on("file_deleted", (event) => this.emit("file_deleted", event));
    this.socket.on("device_link_request", (event) => this.emit("device_link_request", event));
    this.socket.on("device_link_approved", (event, ack) => {
      ack(); // acknowledged: the server deletes the payload
      this.emit("device_link_approved", event);
    });
  }

  /** A second device of `first`: the same account, logged in again, no keys yet. */
  async logInAs(first) {
    const answer = await api.login({ ...first.credentials, deviceName: "Demo, second device" });
    this.user = answer.user;
    this.api = api.withToken(answer.token);
    this.deviceId = answer.deviceId;
    $(".user-id", this.panel).textContent = `${answer.user.username} · ${answer.user.id} · ${answer.deviceId}`;
  }

  /** New device: a fresh ECDH key goes to the server; the code shown here must match the one the approver shows. */
  async requestLink() {
    this.link = await requestDeviceLink(this.api);
    $(".identity", this.panel).textContent = `waiting for approval · code ${this.link.verificationCode}`;
    return this.link;
  }

  /** Approver: compare the codes, then send the identity key (and the conversation's session key) encrypted to the new device. */
  async approveLink(request, expectedCode) {
    const code = await deviceLinkCode(request.ephemeralPublicKey);
    if (code !== expectedCode) throw new Error(`The codes differ (${code} here, ${expectedCode} on the new device): do not approve`);
    const extras = { sessionKey: await e2e.exportSessionKey(this.session), peer: this.peer };
    await approveDeviceLink(this.api, request, this.identity.keys.privateKey, { extras });
  }

  /** New device: check the account's signature, decrypt, and take the identity key and the session key. */
  async finishLink(event) {
    const linked = await this.link.complete(event);
    this.identity = await e2e.linkedIdentity(linked);
    $(".identity", this.panel).textContent = `ECDSA P-256 · ${this.identity.fingerprint} (linked)`;
    $(".identity", this.panel).dataset.fingerprint = this.identity.fingerprint;
    this.peer = linked.extras.peer;
    this.setSession(await e2e.importSessionKey(linked.extras.sessionKey), "linked");
  }

  async addContact(other) {
    const { contact } = await this.api.addContact({ username: other.user.username });
    this.peer = { id: contact.id, name: other.name, publicKey: contact.publicKey };
  }

  /** Initiator: a signed ephemeral key, sent through the API; the target hears of it on the socket. */
  async initiateKeyExchange() {
    const ephemeral = await e2e.newEphemeral();
    const { exchangeId } = await this.api.initiateKeyExchange({
      targetUserId: this.peer.id,
      ephemeralPublicKey: ephemeral.publicKeyPem,
      signature: await e2e.sign(this.identity, ephemeral.publicKeyPem),
    });
    this.ephemerals.set(exchangeId, ephemeral);
    return exchangeId;
  }

  /** Target: check the initiator's signature with their registered key, answer with our own ephemeral key. */
  async onKeyExchangeRequest(event) {
    if (event.fromUserId !== this.peer?.id) return;
    if (!(await e2e.verify(this.peer.publicKey, event.signature, event.ephemeralPublicKey))) {
      throw new Error("The key exchange request is not signed by the contact's registered key");
    }
    const ephemeral = await e2e.newEphemeral();
    await this.api.respondKeyExchange({
      exchangeId: event.exchangeId,
      ephemeralPublicKey: ephemeral.publicKeyPem,
      signature: await e2e.sign(this.identity, ephemeral.publicKeyPem),
    });
    this.setSession(await e2e.deriveSessionKey(ephemeral, event.ephemeralPublicKey), "responded");
  }

  /** Initiator: check the target's signature, derive the same key. */
  async onKeyExchangeResponse(event) {
    const ephemeral = this.ephemerals.get(event.exchangeId);
    if (!ephemeral || event.fromUserId !== this.peer?.id) return;
    if (!(await e2e.verify(this.peer.publicKey, event.signature, event.ephemeralPublicKey))) {
      throw new Error("The key exchange response is not signed by the contact's registered key");
    }
    this.ephemerals.delete(event.exchangeId);
    this.setSession(await e2e.deriveSessionKey(ephemeral, event.ephemeralPublicKey), "initiated");
  }

  setSession(session, role) {
    this.session = session;
    $(".session", this.panel).textContent = `AES-256-GCM · ${session.fingerprint} (${role})`;
    $(".session", this.panel).dataset.fingerprint = session.fingerprint;
    this.emit("session", session);
  }

  /** A text message, over REST or the socket; both answer with the record the server stored. `expiresInSeconds` makes it disappear. */
  async sendText(text, via = "rest", { expiresInSeconds } = {}) {
    const body = { ...(await e2e.sealMessage(this.identity, this.session, this.peer.id, text)), ...(expiresInSeconds ? { expiresInSeconds } : {}) };
    const record = via === "rest" ? (await this.api.sendMessage(body)).message : (await emitChecked(this.socket, "send_message", body)).message;
    this.decrypted.set(record.id, text);
    this.render({ direction: "out", record, text, verified: true, via });
    return record;
  }

  /**
   * A file: encrypted and signed here, uploaded as opaque bytes; its name travels inside an encrypted message.
   * With `deleteAfterDownload` the server deletes it after the receiver's first complete download; with
   * `expiresInSeconds` its announcement disappears.
   */
  async sendFile(name, bytes, { deleteAfterDownload = false, expiresInSeconds } = {}) {
    const sealed = await e2e.sealFile(this.identity, this.session, bytes);
    const { file } = await this.api.uploadFile({
      receiverId: this.peer.id,
      filename: "attachment.bin", // the real name is secret: it goes in the encrypted announcement below
      iv: sealed.iv,
      authTag: sealed.authTag,
      signature: sealed.signature,
      encryptedData: new Blob([sealed.ciphertext]),
      ...(deleteAfterDownload ? { deleteAfterDownload: "true" } : {}),
    });
    const announcement = JSON.stringify({ fileId: file.fileId, name, size: bytes.length });
    const sealedAnnouncement = await e2e.sealMessage(this.identity, this.session, this.peer.id, announcement, "file");
    const body = { ...sealedAnnouncement, ...(expiresInSeconds ? { expiresInSeconds } : {}) };
    const { message: record } = await this.api.sendMessage(body);
    this.decrypted.set(record.id, `File: ${name}`);
    this.decrypted.set(file.fileId, new TextDecoder().decode(bytes));
    this.fileOf.set(record.id, file.fileId);
    this.render({ direction: "out", record, text: `File: ${name} (${bytes.length} bytes)`, verified: true, file: { record: file, bytes, ciphertext: sealed.ciphertext } });
    return file;
  }

  async onMessage(record) {
    if (record.senderId !== this.peer?.id || !this.session) return;
    const { text, verified } = await e2e.openMessage(this.peer.publicKey, this.session, record);
    if (!verified) throw new Error(`Message ${record.id} is not signed by ${this.peer.name}`);
    if (record.messageType === "file") {
      const announcement = JSON.parse(text);
      const { file } = await this.api.getFileMeta(announcement.fileId);
      const ciphertext = await this.api.downloadFile(announcement.fileId);
      const opened = await e2e.openFile(this.peer.publicKey, this.session, ciphertext, file);
      if (!opened.verified) throw new Error(`File ${file.fileId} is not signed by ${this.peer.name}`);
      this.decrypted.set(record.id, `File: ${announcement.name}`);
      this.decrypted.set(file.fileId, new TextDecoder().decode(opened.bytes));
      this.fileOf.set(record.id, file.fileId);
      this.render({ direction: "in", record, text: `File: ${announcement.name} (${opened.bytes.length} bytes)`, verified, file: { record: file, bytes: opened.bytes, ciphertext } });
      this.emit("file", { name: announcement.name, bytes: opened.bytes });
    } else {
      this.decrypted.set(record.id, text);
      this.render({ direction: "in", record, text, verified });
      this.emit("message", { record, text });
    }
  }

  render({ direction, record, text, verified, via, file }) {
    const node = $("#message").content.firstElementChild.cloneNode(true);
    node.dataset.direction = direction;
    node.dataset.kind = file ? "file" : "text";
    node.dataset.messageId = record.id;
    if (record.expiresAt) node.dataset.expiresAt = record.expiresAt;
    const who = direction === "out" ? `to ${this.peer.name}` : `from ${this.peer.name}`;
    const disappears = record.expiresAt ? ` · disappears at ${new Date(record.expiresAt).toLocaleTimeString()}` : "";
    const once = file?.record.deleteAfterDownload ? " · deleted after one download" : "";
    $(".meta", node).textContent = `${who} · #${record.sequenceNumber}${via === "socket" ? " · via socket" : ""} · ${verified ? "signature ✓" : "unsigned"}${disappears}${once}`;
    $(".plain", node).textContent = text;
    const stored = file ? e2e.toBase64(file.ciphertext) : record.encryptedContent;
    $(".cipher", node).textContent = short(stored, 160);
    $(".cipher", node).title = stored;
    const fields = file
      ? { fileId: file.record.fileId, size: `${file.record.size} bytes`, iv: file.record.iv, authTag: file.record.authTag, filename: file.record.filename }
      : { iv: record.iv, authTag: record.authTag, nonce: record.nonce };
    for (const [name, value] of Object.entries(fields)) {
      const term = document.createElement("dt");
      term.textContent = name;
      const detail = document.createElement("dd");
      detail.textContent = value;
      $(".crypto-fields", node).append(term, detail);
    }
    if (file) {
      const preview = $(".file-text", node);
      preview.hidden = false;
      preview.textContent = new TextDecoder().decode(file.bytes);
    }
    $(".chat", this.panel).append(node);
  }

  /** Takes disappearing messages whose time is up off the screen, as a client should (the server already has). */
  removeExpired(now = Date.now()) {
    for (const node of this.panel.querySelectorAll(".message[data-expires-at]")) {
      if (Date.parse(node.dataset.expiresAt) > now) continue;
      const note = document.createElement("p");
      note.className = "vanished";
      note.textContent = `A disappearing ${node.dataset.kind === "file" ? "file announcement" : "message"} vanished.`;
      node.replaceWith(note);
    }
  }

  enableCompose() {
    const form = $(".compose", this.panel);
    for (const control of form.elements) control.disabled = false;
    form.onsubmit = (event) => {
      event.preventDefault();
      const text = form.elements.text.value.trim();
      if (!text) return;
      form.elements.text.value = "";
      this.sendText(text, "socket").catch((error) => setStatus("failed", `${this.name}: ${error.message}`));
    };
    form.elements.file.onchange = async () => {
      const chosen = form.elements.file.files[0];
      form.elements.file.value = "";
      if (!chosen) return;
      this.sendFile(chosen.name, new Uint8Array(await chosen.arrayBuffer())).catch((error) => setStatus("failed", `${this.name}: ${error.message}`));
    };
  }

  close() {
    this.socket?.disconnect();
  }
}

/** Reads back what the server holds for the conversation, beside what the browsers decrypted. */
async function showServerCopy(alice, bob) {
  const { messages } = await alice.api.getHistory(bob.user.id, { limit: 100 });
  const rows = [];
  for (const record of messages) {
    const from = record.senderId === alice.user.id ? alice : bob;
    const to = from === alice ? bob : alice;
    const plain = from.decrypted.get(record.id) ?? to.decrypted.get(record.id) ?? "";
    rows.push([String(record.sequenceNumber), `${from.name} → ${to.name}`, record.messageType, record.encryptedContent, plain]);
    if (record.messageType === "file") {
      const fileId = to.fileOf.get(record.id) ?? from.fileOf.get(record.id);
      if (fileId) {
        const bytes = await to.api.downloadFile(fileId);
        rows.push(["", `${from.name} → ${to.name}`, "file body", e2e.toBase64(bytes), to.decrypted.get(fileId) ?? ""]);
      }
    }
  }
  const body = $("#stored");
  body.replaceChildren();
  for (const cells of rows) {
    const row = document.createElement("tr");
    cells.forEach((value, index) => {
      const cell = document.createElement("td");
      if (index === 3) {
        const code = document.createElement("code");
        code.className = "cipher";
        code.textContent = short(value, 120);
        code.title = value;
        cell.append(code);
      } else {
        cell.textContent = value;
      }
      if (index === 4) cell.className = "plain";
      row.append(cell);
    });
    body.append(row);
  }
  $("#server-copy").hidden = false;
}

/**
 * What the server lets a sender leave behind less of: a message that disappears, and a file deleted once
 * its receiver has it. Runs after the server-copy table, which shows what stays.
 */
async function ephemeralContent(alice, bob) {
  const disappearing = bob.next("message");
  const sent = await alice.step(`Send a message that disappears in ${DISAPPEAR_SECONDS} s`, () =>
    alice.sendText(SCRIPT.disappearing, "rest", { expiresInSeconds: DISAPPEAR_SECONDS }),
  );
  await bob.step("Receive and decrypt it before it expires", () => disappearing);

  const onceArrived = bob.next("file");
  const deleted = alice.next("file_deleted");
  const onceFile = await alice.step(`Upload ${SCRIPT.onceFile.name}, deleted after one download`, () =>
    alice.sendFile(SCRIPT.onceFile.name, new TextEncoder().encode(SCRIPT.onceFile.text), { deleteAfterDownload: true, expiresInSeconds: DISAPPEAR_SECONDS }),
  );
  await bob.step("Download and decrypt it: the server then deletes it", () => onceArrived);
  await alice.step("Told file_deleted (downloaded); the file now answers 410 FILE_GONE", async () => {
    const event = await deleted;
    if (event.fileId !== onceFile.fileId || event.reason !== "downloaded") throw new Error(`Unexpected file_deleted: ${JSON.stringify(event)}`);
    const answer = await alice.api.getFileMeta(onceFile.fileId).then(
      () => undefined,
      (error) => error,
    );
    if (answer?.code !== "FILE_GONE") throw new Error(`The file still answers: ${answer ? answer.code : "200"}`);
  });

  await alice.step("Wait until both have expired: gone from history and from both screens", async () => {
    const { messages } = await alice.api.getHistory(bob.user.id, { limit: 100 });
    const lastExpiry = Math.max(Date.parse(sent.expiresAt), ...messages.filter((record) => record.expiresAt).map((record) => Date.parse(record.expiresAt)));
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastExpiry - Date.now()) + 250));
    const after = await alice.api.getHistory(bob.user.id, { limit: 100 });
    if (after.messages.some((record) => record.expiresAt)) throw new Error("A disappearing message is still in the history");
    for (const person of [alice, bob]) person.removeExpired();
  });
}

/**
 * Alice's second device: it logs in, asks to be linked, Alice's first device compares the code and
 * approves, and the second device decrypts the identity key (and the session key sent along); then a
 * message from Bob reaches both of Alice's devices.
 */
async function linkSecondDevice(alice, bob) {
  const second = new Person("Alice", { id: "alice-2", title: "Alice — second device" });
  people.push(second);
  second.events.addEventListener("failure", (event) => failRun(event.detail));
  await second.step("Log in as Alice on a second device", () => second.logInAs(alice));
  await second.step("Connect to the relay (Socket.IO)", () => second.connect());
  const requestSeen = alice.next("device_link_request");
  const approved = second.next("device_link_approved");
  const link = await second.step("Ask to be linked: a fresh ECDH key, and a code to compare", () => second.requestLink());
  await alice.step("A new device asks to be linked: codes match, approve (identity key encrypted to it)", async () =>
    alice.approveLink(await requestSeen, link.verificationCode),
  );
  await second.step("Verify the account's signature, decrypt the identity key", async () => {
    await second.finishLink(await approved);
    if (second.identity.fingerprint !== alice.identity.fingerprint) throw new Error("The linked identity key is not Alice's");
  });

  const onFirst = alice.next("message");
  const onSecond = second.next("message");
  await bob.step("Send Alice a message (REST)", () => bob.sendText(SCRIPT.toBothDevices, "rest"));
  await second.step("Receive, verify and decrypt it on the second device", () => onSecond);
  await alice.step("Receive, verify and decrypt it on the first device", () => onFirst);
}

let people = [];
/** Ends the run with an error (a failure inside a socket handler of any panel). */
let failRun = () => {};

async function run() {
  e2e.assertWebCrypto();
  if (typeof window.io !== "function") throw new Error("Socket.IO's client did not load from /socket.io/socket.io.js");
  for (const person of people) person.close();
  $("#users").replaceChildren();
  $("#server-copy").hidden = true;
  const alice = new Person("Alice");
  const bob = new Person("Bob");
  people = [alice, bob];
  // A failure inside a socket handler ends the run too.
  const failure = new Promise((_, reject) => {
    failRun = reject;
    for (const person of people) person.events.addEventListener("failure", (event) => reject(event.detail));
  });
  const script = (async () => {
    await Promise.all([alice.step("Generate an identity key (ECDSA P-256)", () => alice.createKeys()), bob.step("Generate an identity key (ECDSA P-256)", () => bob.createKeys())]);
    await Promise.all([alice.step("Register the public key", () => alice.register()), bob.step("Register the public key", () => bob.register())]);
    await Promise.all([alice.step("Connect to the relay (Socket.IO)", () => alice.connect()), bob.step("Connect to the relay (Socket.IO)", () => bob.connect())]);
    await alice.step("Add Bob as a contact", () => alice.addContact(bob));
    await bob.step("Add Alice as a contact", () => bob.addContact(alice));
    await Promise.all([
      alice.step("Verify my key in the key-transparency log", () => alice.verifyOwnKey()),
      bob.step("Verify my key in the key-transparency log", () => bob.verifyOwnKey()),
    ]);
    await Promise.all([
      alice.step("Verify Bob's key in the key-transparency log", () => alice.verifyKeyInLog(bob.user.id, alice.peer.publicKey)),
      bob.step("Verify Alice's key in the key-transparency log", () => bob.verifyKeyInLog(alice.user.id, bob.peer.publicKey)),
    ]);

    const bobSession = bob.next("session");
    const aliceSession = alice.next("session");
    await alice.step("Start the key exchange (signed ephemeral ECDH key)", () => alice.initiateKeyExchange());
    await bob.step("Verify Alice's signature, respond with a signed ephemeral key", () => bobSession);
    await alice.step("Verify Bob's signature, derive the session key", () => aliceSession);
    if (alice.session.fingerprint !== bob.session.fingerprint) throw new Error("The two session keys differ");

    const toBob = bob.next("message");
    await alice.step("Send an encrypted message (REST)", () => alice.sendText(SCRIPT.aliceToBob, "rest"));
    await bob.step("Receive, verify and decrypt it (socket)", () => toBob);
    const toAlice = alice.next("message");
    await bob.step("Reply over the socket (send_message)", () => bob.sendText(SCRIPT.bobToAlice, "socket"));
    await alice.step("Receive, verify and decrypt the reply", () => toAlice);

    const fileArrived = bob.next("file");
    await alice.step(`Encrypt and upload ${SCRIPT.file.name}`, () => alice.sendFile(SCRIPT.file.name, new TextEncoder().encode(SCRIPT.file.text)));
    await bob.step("Download, verify and decrypt the file", () => fileArrived);
    await showServerCopy(alice, bob);
    await ephemeralContent(alice, bob);
    await linkSecondDevice(alice, bob);
  })();
  await Promise.race([script, failure]);
  for (const person of people) person.enableCompose();
}

runButton.addEventListener("click", async () => {
  runButton.disabled = true;
  setStatus("running", "Running…");
  try {
    await run();
    setStatus("done", "Done: both sides hold the same session key, Alice's second device was linked end to end; the server only stored ciphertext.");
  } catch (error) {
    console.error(error);
    setStatus("failed", `Failed: ${error.code ? `${error.code}: ` : ""}${error.message}`);
  } finally {
    runButton.disabled = false;
  }
});
