/**
 * The typed client for the E2EE messenger API: REST (createApiClient) and realtime (connectRealtime),
 * with types generated from the API's OpenAPI document (generated.ts).
 */
export * from "./generated.js";
export { ApiError, createApiClient, type ApiClient, type ApiClientOptions, type ApiMethods, type ErrorCode } from "./rest.js";
export { connectRealtime, emitChecked, type RealtimeOptions, type RealtimeSocket } from "./realtime.js";
export { approveDeviceLink, deviceLinkCode, requestDeviceLink, type LinkCurve, type LinkedIdentity, type PendingDeviceLink, type WebCryptoKey } from "./devices.js";
export {
  KeyTransparencyError,
  verifyConsistency,
  verifyHeadSignature,
  verifyInclusion,
  verifyUserKey,
  type KeyBinding,
  type KeyTransparencyFailure,
  type TransparencyApi,
  type VerifiedUserKey,
  type VerifyUserKeyOptions,
} from "./transparency.js";
