// Flow cookies: the top byte names the app that owns a flow, so an operator reading
// `ovs-ofctl dump-flows` (and the controller itself, on FLOW_REMOVED) can tell them apart.
export const COOKIE_APP_SHIFT = 56n;
export const COOKIE_APP_MASK = 0xffn << COOKIE_APP_SHIFT;
export const APP_ID = { core: 0x01n, learning: 0x02n, intercept: 0x03n, connection: 0x10n } as const;

export function appCookie(app: bigint, low = 0n): bigint { return (app << COOKIE_APP_SHIFT) | (low & ((1n << COOKIE_APP_SHIFT) - 1n)); }
export function cookieApp(cookie: bigint): bigint { return cookie >> COOKIE_APP_SHIFT; }
