// TinyChat's service worker: the app shell opens with the network cut; the API never goes
// through a cache. App files are network-first (a deploy shows at once, as their no-cache
// headers promise) with the cached copy as the fallback; the libraries under /vendor/, which
// change only with web/package.json, are cache-first. What the page loaded is cached too
// (the page posts its resource list), so modules added later need no list kept here.

const CACHE = "tinychat-shell-v1";
const SHELL = ["/", "/css/app.css", "/js/main.js", "/manifest.webmanifest", "/icons/favicon.svg"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

function cacheable(url) {
  return url.origin === self.location.origin && !url.pathname.startsWith("/api/") && !url.hash.startsWith("#share");
}

self.addEventListener("message", (event) => {
  const urls = (event.data?.cache || []).map((u) => new URL(u, self.location.origin)).filter(cacheable);
  const add = caches.open(CACHE).then((cache) =>
    Promise.all(urls.map((url) => cache.match(url.pathname).then((hit) => hit || cache.add(url.pathname).catch(() => {})))),
  );
  event.waitUntil(add.then(() => event.source?.postMessage({ cached: urls.length })));
});

async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) cache.put(key, response.clone());
    return response;
  } catch (error) {
    const hit = await cache.match(key);
    if (hit) return hit;
    throw error;
  }
}

async function cacheFirst(request, key) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(key);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) cache.put(key, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  // The API is never answered from, nor stored in, a cache: the browser asks the server.
  if (!cacheable(url)) return;
  // Every page of the app is the one shell (a share link's fragment never reaches here).
  const key = request.mode === "navigate" ? "/" : url.pathname;
  event.respondWith(url.pathname.startsWith("/vendor/") ? cacheFirst(request, key) : networkFirst(request, key));
});
