import { lazy, Suspense, useEffect } from 'react';
import { LobbyPage } from './lobby/LobbyPage';
import { RoomPage } from './room/RoomPage';
import { navigate, parseRoute, useLocation } from './routes';
// The watch page pulls in hls.js (~500 kB): load it only there.
const WatchPage = lazy(() => import('./watch/WatchPage').then((m) => ({ default: m.WatchPage })));

export function App() {
  const location = useLocation();
  const [pathname, search = ''] = splitLocation(location);
  const route = parseRoute(pathname);

  useEffect(() => {
    document.title =
      route.page === 'room'
        ? `Room ${route.roomId} · Roomcast`
        : route.page === 'watch'
          ? `Watch ${route.roomId} · Roomcast`
          : 'Roomcast';
  }, [route.page, route.page === 'room' || route.page === 'watch' ? route.roomId : '']);

  switch (route.page) {
    case 'lobby':
      return <LobbyPage />;
    case 'room':
      return <RoomPage key={route.roomId} roomId={route.roomId} search={search} />;
    case 'watch':
      return (
        <Suspense fallback={<p className="page muted">Loading player…</p>}>
          <WatchPage key={route.roomId} roomId={route.roomId} />
        </Suspense>
      );
    case 'not_found':
      return (
        <main className="page narrow">
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>.
          </p>
          <button type="button" className="primary" onClick={() => navigate('/')}>
            Go to the lobby
          </button>
        </main>
      );
  }
}

function splitLocation(location: string): [string, string] {
  const i = location.indexOf('?');
  return i < 0 ? [location, ''] : [location.slice(0, i), location.slice(i)];
}
