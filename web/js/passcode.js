// The RLM passcode, kept for this tab only (sessionStorage): asked by the settings panel,
// sent by the session, forgotten when the server refuses it.

const PASSCODE_KEY = "tinychat.rlmPasscode";

export function rlmPasscode() {
  try {
    return sessionStorage.getItem(PASSCODE_KEY) || "";
  } catch {
    return "";
  }
}

export function rememberPasscode(passcode) {
  try {
    sessionStorage.setItem(PASSCODE_KEY, passcode);
  } catch {
    // Without sessionStorage the passcode is asked again after a reload; nothing breaks.
  }
}

export function forgetPasscode() {
  try {
    sessionStorage.removeItem(PASSCODE_KEY);
  } catch {
    // nothing stored
  }
}
