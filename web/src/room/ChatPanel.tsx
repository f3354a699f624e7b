import { useEffect, useRef, useState, type FormEvent } from 'react';
import type { ChatMessage } from './state';

function time(ts: number): string {
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function ChatPanel(props: { messages: ChatMessage[]; onSend: (text: string) => boolean; onClose: () => void; disabled: boolean }) {
  const { messages, onSend, onClose, disabled } = props;
  const [text, setText] = useState('');
  const listRef = useRef<HTMLOListElement>(null);
  const inputRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    const el = listRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [messages.length]);

  useEffect(() => inputRef.current?.focus(), []);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (onSend(text)) setText('');
  };

  return (
    <aside className="side-panel chat" aria-label="Chat" data-testid="chat-panel">
      <header className="side-header">
        <h2>Chat</h2>
        <button type="button" className="link" aria-label="Close chat" onClick={onClose}>
          ×
        </button>
      </header>
      <ol className="chat-list" ref={listRef} aria-live="polite" aria-relevant="additions">
        {messages.length === 0 && <li className="muted chat-empty">No messages yet. Say hello!</li>}
        {messages.map((m) => (
          <li key={m.id} className={`chat-message ${m.self ? 'self' : ''}`} data-testid="chat-message">
            <div className="chat-meta">
              <strong>{m.self ? 'You' : m.name}</strong> <time>{time(m.ts)}</time>
            </div>
            <div className="chat-text">{m.text}</div>
          </li>
        ))}
      </ol>
      <form className="chat-form" onSubmit={submit}>
        <label htmlFor="chat-input" className="sr-only">
          Message
        </label>
        <input
          id="chat-input"
          ref={inputRef}
          value={text}
          maxLength={2000}
          placeholder="Message everyone"
          autoComplete="off"
          disabled={disabled}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Escape') onClose();
          }}
        />
        <button type="submit" className="primary" disabled={disabled || !text.trim()}>
          Send
        </button>
      </form>
    </aside>
  );
}
