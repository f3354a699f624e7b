import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the app on :5173 and forwards the gateway's routes to a running
// `roomcast serve` (ROOMCAST_DEV_GATEWAY, default http://127.0.0.1:8080).
const gateway = process.env.ROOMCAST_DEV_GATEWAY ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/api': gateway,
      '/hls': gateway,
      '/healthz': gateway,
      '/ws': { target: gateway, ws: true },
    },
  },
});
