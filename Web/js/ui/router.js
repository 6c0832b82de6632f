// Routing by location.pathname with the history API. The server answers index.html for every
// path here, so reloads and shared links land on the right screen.
//
//   /                      conversations (signed in) or the vault door (signed out)
//   /?view=register        registration without an invite (open servers)
//   /?view=recover         recovery with the recovery key
//   /invite/{code}         registration with an invite; also ?invite={code} and the
//                          #/invite/{code} links that `circle invite create` prints
//   /c/{convId}            one conversation
//   /settings, /sessions   account settings (sessions section)
//   /invitations           the settings' invitations section (admins)
//   /vault                 the encrypted file vault
//   /#/activity            the security activity log (the server answers index.html only for
//                          the paths above, so this one lives in the fragment of /)
//   /s/{linkId}#{linkKey}  a share link's public page (no account; the key never leaves the fragment)

/** The activity page's address: `/#/activity`. */
export const ACTIVITY_PATH = '/#/activity';
const ACTIVITY_HASH = '#/activity';

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}

/** The route of a URL: {name, params}. */
export function parseRoute(url = window.location) {
  const query = new URLSearchParams(url.search);
  const share = /^\/s\/([^/?#]+)\/?$/.exec(url.pathname);
  if (share) return { name: 'share', params: { linkId: decode(share[1]) } };
  const hashInvite = /^#\/invite\/([^/?#]+)/.exec(url.hash || '');
  if (hashInvite) return { name: 'invite', params: { code: decode(hashInvite[1]) } };
  if (query.get('invite')) return { name: 'invite', params: { code: query.get('invite') } };

  const path = url.pathname.replace(/\/+$/, '') || '/';
  const invite = /^\/invite\/([^/]+)$/.exec(path);
  if (invite) return { name: 'invite', params: { code: decode(invite[1]) } };
  const chat = /^\/c\/([^/]+)$/.exec(path);
  if (chat) return { name: 'chat', params: { convId: decode(chat[1]) } };
  if (path === '/settings') return { name: 'settings', params: {} };
  if (path === '/vault') return { name: 'vault', params: {} };
  if (path === '/sessions') return { name: 'settings', params: { section: 'sessions' } };
  if (path === '/invitations') return { name: 'settings', params: { section: 'invitations' } };
  if (path === '/') {
    if (url.hash === ACTIVITY_HASH) return { name: 'activity', params: {} };
    const view = query.get('view');
    if (view === 'register' || view === 'recover') return { name: view, params: {} };
    return { name: 'home', params: {} };
  }
  return { name: 'unknown', params: {} };
}

export function chatPath(convId) {
  return `/c/${encodeURIComponent(convId)}`;
}

/** Calls `onRoute(route)` at start, on navigate() and on back/forward; follows same-origin links
 * marked data-route without reloading. */
export class Router {
  constructor(onRoute) {
    this.onRoute = onRoute;
    this.handlePop = () => this.onRoute(parseRoute());
    this.handleClick = (event) => this.followLink(event);
  }

  start() {
    window.addEventListener('popstate', this.handlePop);
    document.addEventListener('click', this.handleClick);
    this.onRoute(parseRoute());
  }

  get current() {
    return parseRoute();
  }

  navigate(path, { replace = false } = {}) {
    const target = new URL(path, window.location.origin);
    const same = target.pathname + target.search + target.hash === window.location.pathname + window.location.search + window.location.hash;
    if (replace) history.replaceState(null, '', target);
    else if (!same) history.pushState(null, '', target);
    this.onRoute(parseRoute(target));
  }

  followLink(event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target.closest('a[data-route]');
    if (!link || link.origin !== window.location.origin) return;
    event.preventDefault();
    this.navigate(link.pathname + link.search + link.hash);
  }
}
