/**
 * Which opens and clicks were made by machines, not by the recipient: mailbox providers' image
 * proxies and privacy prefetchers (Apple Mail Privacy Protection, Google's and Yahoo's image
 * proxies), security gateways that follow every link (Microsoft Defender Safe Links, Barracuda,
 * Mimecast, Proofpoint, Cisco, Trend Micro), link-preview bots and scripted HTTP clients, HEAD
 * requests, and anything within `windowMs` of the delivery (no person opens or clicks that fast).
 *
 * The event is still recorded, with `machine: true` and the reason, so a reader decides what to
 * count. A gateway that sends a browser's user agent from a cloud address is not recognised
 * (nothing here looks up address ranges other than Apple's 17.0.0.0/8).
 */

/** What the classifier looks at. */
export interface RequestFacts {
  /** The User-Agent header ('' when none). */
  readonly userAgent: string;
  /** The client address (normalised, no "::ffff:"). */
  readonly clientAddress: string;
  /** 'GET', 'HEAD', 'POST'. */
  readonly method: string;
  /** ms since the recipient's delivery, when it is known. */
  readonly sinceDeliveryMs?: number;
}

/** The verdict. */
export interface MachineVerdict {
  readonly machine: boolean;
  /** Why ("apple-mpp", "google-image-proxy", "scanner:barracuda", "automation", "head-request", "soon-after-delivery", "no-user-agent"). */
  readonly reason?: string;
}

/** User-agent patterns and the reason each stands for, in the order they are tried. */
const AGENTS: readonly (readonly [RegExp, string])[] = [
  [/GoogleImageProxy|ggpht\.com/i, 'google-image-proxy'],
  [/YahooMailProxy/i, 'yahoo-mail-proxy'],
  [/^Mozilla\/5\.0$/, 'apple-mpp'], // Apple's privacy proxy sends this bare string
  [/Barracuda/i, 'scanner:barracuda'],
  [/Mimecast/i, 'scanner:mimecast'],
  [/Proofpoint|urldefense/i, 'scanner:proofpoint'],
  [/CiscoSecureEmail|IronPort/i, 'scanner:cisco'],
  [/\bTMES\b|Trend ?Micro/i, 'scanner:trend-micro'],
  [/SafeLinks|MSOffice|Microsoft Office Existence|BingPreview|Microsoft-Exchange/i, 'scanner:microsoft'],
  [/Slackbot|facebookexternalhit|LinkedInBot|Twitterbot|Discordbot|WhatsApp|TelegramBot|Snap URL Preview/i, 'link-preview'],
  [/python-requests|python-urllib|aiohttp|Wget|^curl\/|Java\/|Apache-HttpClient|okhttp|Go-http-client|libwww-perl|node-fetch|undici|axios|HeadlessChrome|PhantomJS/i, 'automation'],
  [/bot\b|crawler|spider|scanner/i, 'automation'],
];

/** True for an address in Apple's 17.0.0.0/8 (the network its privacy proxies fetch from). */
function isApple(addr: string): boolean {
  return /^17\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(addr);
}

/**
 * Classifies one request. @param windowMs an open or click this soon after the delivery is a
 * machine's (0: not checked). Never throws.
 */
export function classifyRequest(f: RequestFacts, windowMs: number): MachineVerdict {
  if (f.method === 'HEAD') return { machine: true, reason: 'head-request' };
  const ua = f.userAgent.trim();
  if (!ua) return { machine: true, reason: 'no-user-agent' };
  for (const [re, reason] of AGENTS) if (re.test(ua)) return { machine: true, reason };
  if (isApple(f.clientAddress)) return { machine: true, reason: 'apple-mpp' };
  if (windowMs > 0 && f.sinceDeliveryMs !== undefined && f.sinceDeliveryMs >= 0 && f.sinceDeliveryMs < windowMs) {
    return { machine: true, reason: 'soon-after-delivery' };
  }
  return { machine: false };
}
